"""TFM706: torchvision ``pretrained=True/False`` -> ``weights=<the enum it loaded>`` / ``weights=None``."""

from __future__ import annotations

import ast

from torchfix_mod.codemods.torchfix._api import (
    argument,
    bool_literal,
    calls_to,
    change,
    code_chars,
    keyword_arg,
    offsets,
    positional_args,
    reference,
    span_between,
    value_of,
)
from torchfix_mod.rule import Fix, FixCase, ImportNeed, KeepCase, Rule
from torchfix_mod.semantic import Span

RENAME_ARGUMENT = change("rename_argument")

# What torchvision's legacy interface (`handle_legacy_interface`, torchvision 0.13 and later)
# turns `pretrained=True` / `pretrained_backbone=True` into, per model builder: module under
# torchvision.models where the builder is defined, builder, weights for `pretrained=True`
# ("-": torchvision has none and raises), weights for `pretrained_backbone=True`.
# These are the weights the old `pretrained=True` downloaded; `<Enum>.DEFAULT` is often a
# newer, different set (ResNet50_Weights.DEFAULT is IMAGENET1K_V2).
LEGACY_WEIGHTS = """
alexnet                 alexnet                               AlexNet_Weights.IMAGENET1K_V1
convnext                convnext_tiny                         ConvNeXt_Tiny_Weights.IMAGENET1K_V1
convnext                convnext_small                        ConvNeXt_Small_Weights.IMAGENET1K_V1
convnext                convnext_base                         ConvNeXt_Base_Weights.IMAGENET1K_V1
convnext                convnext_large                        ConvNeXt_Large_Weights.IMAGENET1K_V1
densenet                densenet121                           DenseNet121_Weights.IMAGENET1K_V1
densenet                densenet161                           DenseNet161_Weights.IMAGENET1K_V1
densenet                densenet169                           DenseNet169_Weights.IMAGENET1K_V1
densenet                densenet201                           DenseNet201_Weights.IMAGENET1K_V1
detection.faster_rcnn   fasterrcnn_resnet50_fpn               FasterRCNN_ResNet50_FPN_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.faster_rcnn   fasterrcnn_resnet50_fpn_v2            FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.faster_rcnn   fasterrcnn_mobilenet_v3_large_320_fpn FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1 MobileNet_V3_Large_Weights.IMAGENET1K_V1
detection.faster_rcnn   fasterrcnn_mobilenet_v3_large_fpn     FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1 MobileNet_V3_Large_Weights.IMAGENET1K_V1
detection.fcos          fcos_resnet50_fpn                     FCOS_ResNet50_FPN_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.keypoint_rcnn keypointrcnn_resnet50_fpn             KeypointRCNN_ResNet50_FPN_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.mask_rcnn     maskrcnn_resnet50_fpn                 MaskRCNN_ResNet50_FPN_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.mask_rcnn     maskrcnn_resnet50_fpn_v2              MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.retinanet     retinanet_resnet50_fpn                RetinaNet_ResNet50_FPN_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.retinanet     retinanet_resnet50_fpn_v2             RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1 ResNet50_Weights.IMAGENET1K_V1
detection.ssd           ssd300_vgg16                          SSD300_VGG16_Weights.COCO_V1 VGG16_Weights.IMAGENET1K_FEATURES
detection.ssdlite       ssdlite320_mobilenet_v3_large         SSDLite320_MobileNet_V3_Large_Weights.COCO_V1 MobileNet_V3_Large_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b0                       EfficientNet_B0_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b1                       EfficientNet_B1_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b2                       EfficientNet_B2_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b3                       EfficientNet_B3_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b4                       EfficientNet_B4_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b5                       EfficientNet_B5_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b6                       EfficientNet_B6_Weights.IMAGENET1K_V1
efficientnet            efficientnet_b7                       EfficientNet_B7_Weights.IMAGENET1K_V1
efficientnet            efficientnet_v2_s                     EfficientNet_V2_S_Weights.IMAGENET1K_V1
efficientnet            efficientnet_v2_m                     EfficientNet_V2_M_Weights.IMAGENET1K_V1
efficientnet            efficientnet_v2_l                     EfficientNet_V2_L_Weights.IMAGENET1K_V1
googlenet               googlenet                             GoogLeNet_Weights.IMAGENET1K_V1
inception               inception_v3                          Inception_V3_Weights.IMAGENET1K_V1
maxvit                  maxvit_t                              MaxVit_T_Weights.IMAGENET1K_V1
mnasnet                 mnasnet0_5                            MNASNet0_5_Weights.IMAGENET1K_V1
mnasnet                 mnasnet0_75                           MNASNet0_75_Weights.IMAGENET1K_V1
mnasnet                 mnasnet1_0                            MNASNet1_0_Weights.IMAGENET1K_V1
mnasnet                 mnasnet1_3                            MNASNet1_3_Weights.IMAGENET1K_V1
mobilenetv2             mobilenet_v2                          MobileNet_V2_Weights.IMAGENET1K_V1
mobilenetv3             mobilenet_v3_large                    MobileNet_V3_Large_Weights.IMAGENET1K_V1
mobilenetv3             mobilenet_v3_small                    MobileNet_V3_Small_Weights.IMAGENET1K_V1
optical_flow.raft       raft_large                            Raft_Large_Weights.C_T_SKHT_V2
optical_flow.raft       raft_small                            Raft_Small_Weights.C_T_V2
regnet                  regnet_y_400mf                        RegNet_Y_400MF_Weights.IMAGENET1K_V1
regnet                  regnet_y_800mf                        RegNet_Y_800MF_Weights.IMAGENET1K_V1
regnet                  regnet_y_1_6gf                        RegNet_Y_1_6GF_Weights.IMAGENET1K_V1
regnet                  regnet_y_3_2gf                        RegNet_Y_3_2GF_Weights.IMAGENET1K_V1
regnet                  regnet_y_8gf                          RegNet_Y_8GF_Weights.IMAGENET1K_V1
regnet                  regnet_y_16gf                         RegNet_Y_16GF_Weights.IMAGENET1K_V1
regnet                  regnet_y_32gf                         RegNet_Y_32GF_Weights.IMAGENET1K_V1
regnet                  regnet_y_128gf                        -
regnet                  regnet_x_400mf                        RegNet_X_400MF_Weights.IMAGENET1K_V1
regnet                  regnet_x_800mf                        RegNet_X_800MF_Weights.IMAGENET1K_V1
regnet                  regnet_x_1_6gf                        RegNet_X_1_6GF_Weights.IMAGENET1K_V1
regnet                  regnet_x_3_2gf                        RegNet_X_3_2GF_Weights.IMAGENET1K_V1
regnet                  regnet_x_8gf                          RegNet_X_8GF_Weights.IMAGENET1K_V1
regnet                  regnet_x_16gf                         RegNet_X_16GF_Weights.IMAGENET1K_V1
regnet                  regnet_x_32gf                         RegNet_X_32GF_Weights.IMAGENET1K_V1
resnet                  resnet18                              ResNet18_Weights.IMAGENET1K_V1
resnet                  resnet34                              ResNet34_Weights.IMAGENET1K_V1
resnet                  resnet50                              ResNet50_Weights.IMAGENET1K_V1
resnet                  resnet101                             ResNet101_Weights.IMAGENET1K_V1
resnet                  resnet152                             ResNet152_Weights.IMAGENET1K_V1
resnet                  resnext50_32x4d                       ResNeXt50_32X4D_Weights.IMAGENET1K_V1
resnet                  resnext101_32x8d                      ResNeXt101_32X8D_Weights.IMAGENET1K_V1
resnet                  resnext101_64x4d                      ResNeXt101_64X4D_Weights.IMAGENET1K_V1
resnet                  wide_resnet50_2                       Wide_ResNet50_2_Weights.IMAGENET1K_V1
resnet                  wide_resnet101_2                      Wide_ResNet101_2_Weights.IMAGENET1K_V1
segmentation.deeplabv3  deeplabv3_resnet50                    DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 ResNet50_Weights.IMAGENET1K_V1
segmentation.deeplabv3  deeplabv3_resnet101                   DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1 ResNet101_Weights.IMAGENET1K_V1
segmentation.deeplabv3  deeplabv3_mobilenet_v3_large          DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1 MobileNet_V3_Large_Weights.IMAGENET1K_V1
segmentation.fcn        fcn_resnet50                          FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 ResNet50_Weights.IMAGENET1K_V1
segmentation.fcn        fcn_resnet101                         FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1 ResNet101_Weights.IMAGENET1K_V1
segmentation.lraspp     lraspp_mobilenet_v3_large             LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1 MobileNet_V3_Large_Weights.IMAGENET1K_V1
shufflenetv2            shufflenet_v2_x0_5                    ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1
shufflenetv2            shufflenet_v2_x1_0                    ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1
shufflenetv2            shufflenet_v2_x1_5                    ShuffleNet_V2_X1_5_Weights.IMAGENET1K_V1
shufflenetv2            shufflenet_v2_x2_0                    ShuffleNet_V2_X2_0_Weights.IMAGENET1K_V1
squeezenet              squeezenet1_0                         SqueezeNet1_0_Weights.IMAGENET1K_V1
squeezenet              squeezenet1_1                         SqueezeNet1_1_Weights.IMAGENET1K_V1
swin_transformer        swin_t                                Swin_T_Weights.IMAGENET1K_V1
swin_transformer        swin_s                                Swin_S_Weights.IMAGENET1K_V1
swin_transformer        swin_b                                Swin_B_Weights.IMAGENET1K_V1
swin_transformer        swin_v2_t                             Swin_V2_T_Weights.IMAGENET1K_V1
swin_transformer        swin_v2_s                             Swin_V2_S_Weights.IMAGENET1K_V1
swin_transformer        swin_v2_b                             Swin_V2_B_Weights.IMAGENET1K_V1
vgg                     vgg11                                 VGG11_Weights.IMAGENET1K_V1
vgg                     vgg11_bn                              VGG11_BN_Weights.IMAGENET1K_V1
vgg                     vgg13                                 VGG13_Weights.IMAGENET1K_V1
vgg                     vgg13_bn                              VGG13_BN_Weights.IMAGENET1K_V1
vgg                     vgg16                                 VGG16_Weights.IMAGENET1K_V1
vgg                     vgg16_bn                              VGG16_BN_Weights.IMAGENET1K_V1
vgg                     vgg19                                 VGG19_Weights.IMAGENET1K_V1
vgg                     vgg19_bn                              VGG19_BN_Weights.IMAGENET1K_V1
video.mvit              mvit_v1_b                             MViT_V1_B_Weights.KINETICS400_V1
video.mvit              mvit_v2_s                             MViT_V2_S_Weights.KINETICS400_V1
video.resnet            r3d_18                                R3D_18_Weights.KINETICS400_V1
video.resnet            mc3_18                                MC3_18_Weights.KINETICS400_V1
video.resnet            r2plus1d_18                           R2Plus1D_18_Weights.KINETICS400_V1
video.s3d               s3d                                   S3D_Weights.KINETICS400_V1
video.swin_transformer  swin3d_t                              Swin3D_T_Weights.KINETICS400_V1
video.swin_transformer  swin3d_s                              Swin3D_S_Weights.KINETICS400_V1
video.swin_transformer  swin3d_b                              Swin3D_B_Weights.KINETICS400_V1
vision_transformer      vit_b_16                              ViT_B_16_Weights.IMAGENET1K_V1
vision_transformer      vit_b_32                              ViT_B_32_Weights.IMAGENET1K_V1
vision_transformer      vit_l_16                              ViT_L_16_Weights.IMAGENET1K_V1
vision_transformer      vit_l_32                              ViT_L_32_Weights.IMAGENET1K_V1
vision_transformer      vit_h_14                              -
"""
# Builders of torchvision.models.quantization: `pretrained=True` there depends on `quantize`.
QUANTIZED = frozenset({
    "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_large", "resnet18", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
})
QUANTIZED_MODULES = {
    "googlenet": "googlenet", "inception_v3": "inception", "mobilenet_v2": "mobilenetv2",
    "mobilenet_v3_large": "mobilenetv3", "shufflenet_v2_x0_5": "shufflenetv2",
    "shufflenet_v2_x1_0": "shufflenetv2", "shufflenet_v2_x1_5": "shufflenetv2",
    "shufflenet_v2_x2_0": "shufflenetv2",
}
MODELS = "torchvision.models"


class Builder:
    def __init__(self, name: str, defined_in: str, weights: str | None, backbone: str | None) -> None:
        self.name = name
        self.defined_in = defined_in  # torchvision.models.detection.faster_rcnn
        sub = defined_in[len(MODELS) + 1 :]
        # where the package exports it: torchvision.models, or .detection / .segmentation / ...
        self.public = f"{MODELS}.{sub.split('.')[0]}" if "." in sub else MODELS
        self.weights = weights
        self.backbone = backbone

    def weights_modules(self) -> list[str]:
        modules = [self.public, self.defined_in]
        if self.defined_in.endswith((".mobilenetv2", ".mobilenetv3")):
            modules.append(f"{MODELS}.mobilenet")
        return modules


def _load() -> tuple[dict[str, Builder], dict[str, str]]:
    builders: dict[str, Builder] = {}
    homes: dict[str, str] = {}  # weights enum -> module defining it
    for line in LEGACY_WEIGHTS.strip().splitlines():
        module, name, weights, *backbone = line.split()
        builder = Builder(name, f"{MODELS}.{module}", None if weights == "-" else weights, backbone[0] if backbone else None)
        for qname in builder_names(builder):
            builders[qname] = builder
        if builder.weights is not None:
            homes[builder.weights.split(".")[0]] = builder.defined_in
    return builders, homes


def builder_names(builder: Builder) -> set[str]:
    """Every qualified name under which torchvision exports the builder."""
    names = {f"{builder.defined_in}.{builder.name}", f"{builder.public}.{builder.name}"}
    if builder.defined_in.endswith((".mobilenetv2", ".mobilenetv3")):
        names.add(f"{MODELS}.mobilenet.{builder.name}")
    return names


BUILDERS, WEIGHTS_HOME = _load()
QUANTIZED_NAMES = frozenset(
    qname
    for name in QUANTIZED
    for qname in (
        f"{MODELS}.quantization.{name}",
        f"{MODELS}.quantization.{QUANTIZED_MODULES.get(name, 'resnet')}.{name}",
        *((f"{MODELS}.quantization.mobilenet.{name}",) if name.startswith("mobilenet") else ()),
    )
)
BUILDER_NAMES = frozenset({b.name for b in BUILDERS.values()} | QUANTIZED)
# old parameter -> (new parameter, position of the old one in the old signatures)
LEGACY_PARAMETERS = (("pretrained", "weights", 0), ("pretrained_backbone", "weights_backbone", None))
QUALIFIED_BUILDERS = frozenset(BUILDERS) | QUANTIZED_NAMES


class TorchvisionPretrainedRule(Rule):
    """
    ## What it does
    Finds torchvision model builders called with the deprecated
    `pretrained=` / `pretrained_backbone=` and writes the `weights=` /
    `weights_backbone=` argument that torchvision itself substitutes:
    `pretrained=True` becomes the enum member of the weights it loaded
    (`ResNet50_Weights.IMAGENET1K_V1`, `FasterRCNN_ResNet50_FPN_Weights.COCO_V1`,
    ...), `pretrained=False` becomes `weights=None`. TorchFix reports the same
    as TOR201.

    ## Why is this bad?
    `pretrained` has been deprecated since torchvision 0.13, warns on every
    call, and may be removed. The `weights` enums also say *which* weights are
    loaded, with their transforms and metadata.

    ## Example
    ```python
    from torchvision.models import resnet50

    model = resnet50(pretrained=True)
    ```

    ## Use instead
    ```python
    from torchvision.models import ResNet50_Weights, resnet50

    model = resnet50(weights=ResNet50_Weights.IMAGENET1K_V1)
    ```

    ## Fix safety
    Safe on torchvision 0.13 and later: the fix writes exactly the value
    torchvision's own compatibility layer passes on, so the same weights load.
    It is deliberately not `ResNet50_Weights.DEFAULT`: for many models
    (ResNet-50/101/152, ResNeXt, Wide ResNet, RegNets, MobileNet V2,
    MobileNet V3 Large, EfficientNet-B1) `DEFAULT` names newer weights with
    other accuracies and preprocessing. The enum is named through the module
    the call already uses (`models.ResNet50_Weights`, `torchvision.models...`),
    an existing import, or a new `from torchvision.models import ...` when the
    file imports torchvision at its top and the name is free. Torchvision
    older than 0.13 has no `weights` parameter.

    ## Known problems
    Left alone: code kept for other PyTorch releases (either branch of an `if`
    that tests a version or `hasattr`, directly or through a flag or function of
    the file; an `except ImportError`/`AttributeError` fallback), where the old
    API is used on purpose.

    Reported without a fix: a value other than the literals `True`/`False`
    (`pretrained=cfg.pretrained`), `pretrained=True` on models torchvision has
    no legacy weights for (`vit_h_14`, `regnet_y_128gf`: torchvision raises),
    the quantized builders (`torchvision.models.quantization.*`, where the
    weights depend on `quantize`), calls passing both `pretrained` and
    `weights`, a positional `True`/`False` followed by other positional
    arguments, and calls where the enum cannot be named without a new import
    that would shadow a name or make torchvision a new top-level dependency.
    `pretrained` is looked for by keyword, or as a literal `True`/`False` in
    first position; `pretrained_backbone` by keyword only.
    """

    code = "TFM706"
    respects_version_gates = True
    name = "torchvision-pretrained"
    summary = "torchvision pretrained= is deprecated; use weights= with the same weights (TorchFix TOR201)"

    fixes = (
        FixCase(
            "import torchvision\n\n"
            "backbone = torchvision.models.resnet50(pretrained=True)\n"
            "head = torchvision.models.mobilenet_v3_small(pretrained=False, num_classes=10)\n",
            "import torchvision\n\n"
            "backbone = torchvision.models.resnet50(weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V1)\n"
            "head = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10)\n",
        ),
        FixCase(
            "from torchvision.models import resnet18\n\nnet = resnet18(pretrained=True)\n",
            "from torchvision.models import ResNet18_Weights, resnet18\n\nnet = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)\n",
        ),
        FixCase(
            "from torchvision import models\n\n"
            "det = models.detection.fasterrcnn_resnet50_fpn(pretrained=False, pretrained_backbone=True)\n"
            "seg = models.segmentation.deeplabv3_resnet50(True)\n",
            "from torchvision import models\n\n"
            "det = models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=models.ResNet50_Weights.IMAGENET1K_V1)\n"
            "seg = models.segmentation.deeplabv3_resnet50(weights=models.segmentation.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1)\n",
        ),
    )
    keeps = (
        KeepCase("from torchvision.models import ResNet50_Weights, resnet50\n\nm = resnet50(weights=ResNet50_Weights.DEFAULT)\n"),
        KeepCase("import torchvision\n\nm = torchvision.models.resnet50(pretrained=cfg.pretrained)\n", reported=True),
        KeepCase("import torchvision\n\nm = torchvision.models.vit_h_14(pretrained=True)\n", reported=True),
        KeepCase("from torchvision.models.quantization import resnet50\n\nm = resnet50(pretrained=True, quantize=True)\n", reported=True),
        KeepCase("import timm\n\nm = timm.create_model('resnet50', pretrained=True)\n"),
        KeepCase("def resnet50(pretrained=False):\n    pass\n\nm = resnet50(pretrained=True)\n"),
        KeepCase("from torchvision.models import resnet50\n\nm = resnet50(weights_enum)\n"),
    )

    def check(self) -> None:
        for node, qname in calls_to(self.model, QUALIFIED_BUILDERS):
            self._check_call(node, BUILDERS.get(qname))

    def _check_call(self, node: ast.Call, builder: Builder | None) -> None:
        for old, new, position in LEGACY_PARAMETERS:
            arg = argument(node, old, position)
            if arg is None:
                continue
            flag = bool_literal(value_of(arg))
            if not isinstance(arg, ast.keyword) and flag is None:
                continue  # a positional argument that is not a bool is the new `weights`
            if old == "pretrained_backbone" and builder is not None and builder.backbone is None:
                continue  # not a parameter of this builder
            self._check(node, builder, arg, old, new, position, flag)

    def _check(
        self, call: ast.Call, builder: Builder | None, arg: ast.keyword | ast.expr, old: str, new: str,
        position: int | None, flag: bool | None,
    ) -> None:
        extent = self._value_extent(call, arg)
        written = f"{old}={self.model.source[extent[0] : extent[1]]}" if flag is not None else f"`{old}`"
        # where LibCST's argument is: a keyword with its value, or the value in its parentheses
        at = arg if isinstance(arg, ast.keyword) else span_between(self.model, *extent)
        message = f"`{old}` is deprecated since torchvision 0.13; use `{new}`"
        if builder is None:
            self.report(at, f"{message} (for quantized models the weights depend on `quantize`)")
            return
        if keyword_arg(call, new) is not None or flag is None:
            self.report(at, message)
            return
        stars = any(isinstance(a, ast.Starred) for a in call.args) or any(kw.arg is None for kw in call.keywords)
        if not isinstance(arg, ast.keyword) and (len(positional_args(call)) != 1 or stars):
            self.report(at, f"{message} (passed by position, with other positional arguments after it)")
            return
        if not flag:
            self._fix(call, at, (old, position, new, None, "", ""), None, f"{message}: `{new}=None`")
            return
        weights = builder.weights if old == "pretrained" else builder.backbone
        if weights is None:
            self.report(at, f"`{written}`: torchvision has no legacy weights for `{builder.name}` and raises")
            return
        enum, member = weights.split(".")
        modules = builder.weights_modules() if old == "pretrained" else [MODELS, WEIGHTS_HOME[enum]]
        found = reference(self.model, call, modules, enum, hint=call.func, package="torchvision")
        message = f"{message}: `{new}={enum}.{member}` are the weights `{written}` loads"
        if found is None:
            self.report(at, message)
            return
        spelling, need = found
        self._fix(call, at, (old, position, new, spelling, enum, member), need, message)

    def _fix(self, call: ast.Call, at: ast.AST | Span, change_args: tuple, need: ImportNeed | None, message: str) -> None:
        # the edit rewrites the argument through its call, which ast and LibCST place alike
        edit = self.edit(call, "Call", RENAME_ARGUMENT, *change_args)
        fix, note = self.needs_release(Fix([edit], imports=(need,) if need else ()), "torchvision", "0.13", "weights=")
        self.report(at, message + note, fix)

    def _value_extent(self, call: ast.Call, arg: ast.keyword | ast.expr) -> tuple[int, int]:
        """Where the argument's value starts and ends in the source, with any parentheses of
        its own around it (LibCST's extent of the value, and of a positional argument)."""
        model, source = self.model, self.model.source
        start, end = offsets(model, value_of(arg))
        if isinstance(arg, ast.keyword):
            # `name = (value)`: every parenthesis after the `=` is the value's
            begin = offsets(model, arg)[0]
            chars = list(code_chars(source[begin:start]))
            equal = next(i for i, (_, char) in enumerate(chars) if char == "=")
            opening = [begin + i for i, char in chars[equal + 1 :] if char == "("]
        else:
            # the first positional argument: the first parenthesis after the function is the call's
            begin = offsets(model, call.func)[1]
            opening = [begin + i for i, char in code_chars(source[begin:start]) if char == "("][1:]
        if not opening:
            return start, end
        closed, remaining = end, len(opening)
        for i, char in code_chars(source[end:]):
            if char == ")":
                closed, remaining = end + i + 1, remaining - 1
                if not remaining:
                    break
        return opening[0], closed
