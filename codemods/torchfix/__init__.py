"""TorchFix's TOR checks, as TFM701-TFM710: ``torch.load`` without ``weights_only``,
``checkpoint`` without ``use_reentrant``, the ``require_grad`` typo, the private
``default_collate``, ``log1p``/``expm1``, torchvision's ``pretrained=``, ``v2.ToTensor`` and
module imports, ``DataLoader`` workers and ``zero_grad(set_to_none=False)``.

``_api`` holds what they share on the semantic model (call arguments, literals, references to a
module's names at a given place, the identifiers and strings a file spells); ``_api_edits``
holds the LibCST changes of their fixes, imported only when a fix is written.
"""
