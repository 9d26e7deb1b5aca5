"""The deprecated and removed PyTorch APIs the TFM6xx rules look for, as data.

Each entry names an API by the qualified name users import it under, the rule that reports
it, what to use instead, the TorchFix codes of the same finding (so TorchFix users can map
their configuration), and, when a mechanical rewrite exists, the name of the argument rewrite
the rule applies (``rewrite``). Entries without a rewrite are reported only; ``note`` says what
differs in the replacement and is part of the message.

The rules never import torch: these facts were read off PyTorch 2.13 and TorchFix 0.7.0
(``deprecated_symbols.yaml``) and are checked against the installed torch by the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

REMOVED = "TFM601"
DEPRECATED = "TFM602"
FUNCTORCH = "TFM603"
AMP = "TFM604"

# TorchFix 0.7.0's codes for its deprecated-symbol findings: (call, import)
TORCHFIX_REMOVED = ("TOR001", "TOR004")
TORCHFIX_DEPRECATED = ("TOR101", "TOR103")
NOT_IN_TORCHFIX = ()


@dataclass(frozen=True)
class Deprecation:
    name: str  # qualified name, e.g. "torch.qr"
    rule: str  # the TFM6xx code that reports it
    replacement: str  # what to use instead, as shown in the message
    torchfix: tuple[str, ...] = TORCHFIX_DEPRECATED  # TorchFix codes (call, import); () when absent
    note: str = ""  # what differs in the replacement
    rewrite: str | None = None  # the argument rewrite the rule applies; None: report only
    device: str | None = None  # the device type the replacement takes (TFM604)
    aliases: tuple[str, ...] = ()  # other qualified names of the same object
    since: str = ""  # the torch release that introduced the replacement (fixes below it are unsafe)

    @property
    def target(self) -> str:
        """The replacement's qualified name (``torch.nn.Upsample(mode=...)`` -> ``torch.nn.Upsample``)."""
        return self.replacement.split("(")[0]

    @property
    def short(self) -> str:
        return self.name.rpartition(".")[2]


DEPRECATIONS: tuple[Deprecation, ...] = (
    # -- TFM601: removed; calling them raises RuntimeError ---------------------------------
    Deprecation(
        "torch.solve", REMOVED, "torch.linalg.solve", TORCHFIX_REMOVED,
        note="its arguments are reversed (`torch.linalg.solve(A, B)` for `torch.solve(B, A)`) "
        "and it returns the solution only, without the LU factorization",
    ),
    Deprecation(
        "torch.symeig", REMOVED, "torch.linalg.eigh", TORCHFIX_REMOVED,
        note="it reads the lower triangle by default (`UPLO=\"U\"` reads the upper one, as "
        "`symeig` did); for eigenvalues only (`eigenvectors=False`) use `torch.linalg.eigvalsh`",
    ),
    Deprecation(
        "torch.matrix_rank", REMOVED, "torch.linalg.matrix_rank", TORCHFIX_REMOVED,
        note="`symmetric=` is spelled `hermitian=`, and an explicit `tol` is `atol=tol, rtol=0`",
        rewrite="matrix_rank",
    ),
    Deprecation(
        "torch.lstsq", REMOVED, "torch.linalg.lstsq", TORCHFIX_REMOVED,
        note="its arguments are reversed (`torch.linalg.lstsq(A, B)` for `torch.lstsq(B, A)`) "
        "and it returns a named tuple whose `solution` is not padded with QR data",
    ),
    Deprecation(
        "torch.eig", REMOVED, "torch.linalg.eig", NOT_IN_TORCHFIX,
        note="it returns complex eigenvalues and eigenvectors; for eigenvalues only use "
        "`torch.linalg.eigvals`",
    ),
    # -- TFM602: deprecated, still working ---------------------------------------------------
    Deprecation(
        "torch.qr", DEPRECATED, "torch.linalg.qr",
        note="`some=False` is `mode=\"complete\"`", rewrite="qr",
    ),
    Deprecation(
        "torch.cholesky", DEPRECATED, "torch.linalg.cholesky",
        note="`upper` is a keyword-only argument there", rewrite="cholesky",
    ),
    Deprecation(
        "torch.range", DEPRECATED, "torch.arange",
        note="it excludes `end`, and infers an integer dtype from integer arguments where "
        "`torch.range` returns floats",
        rewrite="range",
    ),
    Deprecation(
        "torch.chain_matmul", DEPRECATED, "torch.linalg.multi_dot",
        note="it takes the matrices as one list", rewrite="chain_matmul",
        aliases=("torch.functional.chain_matmul",),
    ),
    Deprecation("torch.ger", DEPRECATED, "torch.outer", rewrite="rename"),
    Deprecation(
        "torch.norm", DEPRECATED, "torch.linalg.vector_norm",
        note="or `torch.linalg.matrix_norm` for `p=\"fro\"`/`\"nuc\"` over two dimensions; "
        "`ord` replaces `p`",
        aliases=("torch.functional.norm",),
    ),
    Deprecation(
        "torch.svd", DEPRECATED, "torch.linalg.svd",
        note="it returns `Vh` (the conjugate transpose of `V`) instead of `V`, computes full "
        "matrices unless `full_matrices=False` (`some=True` was the default), and "
        "`compute_uv=False` is `torch.linalg.svdvals`",
    ),
    Deprecation(
        "torch.lu", DEPRECATED, "torch.linalg.lu_factor",
        note="`get_infos=True` is `torch.linalg.lu_factor_ex`",
        aliases=("torch.functional.lu",),
    ),
    Deprecation(
        "torch.lu_solve", DEPRECATED, "torch.linalg.lu_solve",
        note="its arguments are reordered: `torch.linalg.lu_solve(LU, pivots, B)` for "
        "`torch.lu_solve(b, LU_data, LU_pivots)`",
    ),
    Deprecation(
        "torch.triangular_solve", DEPRECATED, "torch.linalg.solve_triangular",
        note="its arguments are reversed (`solve_triangular(A, B, upper=...)` for "
        "`triangular_solve(b, A)`), `upper` has no default, and it returns the solution only",
    ),
    Deprecation(
        "torch.nn.UpsamplingNearest2d", DEPRECATED, "torch.nn.Upsample(mode=\"nearest\")",
        rewrite="upsample", aliases=("torch.nn.modules.upsampling.UpsamplingNearest2d",),
    ),
    Deprecation(
        "torch.nn.UpsamplingBilinear2d", DEPRECATED,
        "torch.nn.Upsample(mode=\"bilinear\", align_corners=True)",
        rewrite="upsample", aliases=("torch.nn.modules.upsampling.UpsamplingBilinear2d",),
    ),
    Deprecation(
        "torch.testing.assert_allclose", DEPRECATED, "torch.testing.assert_close",
        note="its default tolerances differ, `equal_nan` defaults to False, and it checks "
        "dtype, device and layout unless told not to",
        aliases=("torch.testing._comparison.assert_allclose",),
    ),
    Deprecation(
        "torch.nn.utils.weight_norm", DEPRECATED, "torch.nn.utils.parametrizations.weight_norm",
        note="the weight is then stored as `parametrizations.weight.original0`/`original1` "
        "instead of `weight_g`/`weight_v` (state_dict keys and attributes change; old "
        "checkpoints still load), and `torch.nn.utils.parametrize.remove_parametrizations` "
        "replaces `remove_weight_norm`",
        aliases=("torch.nn.utils.weight_norm.weight_norm",),
    ),
    Deprecation(
        "torch.backends.cuda.sdp_kernel", DEPRECATED, "torch.nn.attention.sdpa_kernel",
        note="it takes a list of `torch.nn.attention.SDPBackend` values instead of the "
        "`enable_flash`/`enable_math`/`enable_mem_efficient`/`enable_cudnn` flags",
    ),
    Deprecation(
        "torch.utils._pytree._register_pytree_node", DEPRECATED,
        "torch.utils._pytree.register_pytree_node",
        note="it also registers the type with the C++ pytree, raises if the type is already "
        "registered, and has no `to_str_fn`/`maybe_from_str_fn`",
        rewrite="pytree",
    ),
    # -- TFM603: functorch ------------------------------------------------------------------
    *(
        Deprecation(f"functorch.{name}", FUNCTORCH, f"torch.func.{name}", rewrite="rename")
        for name in ("vmap", "grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "functionalize")
    ),
    Deprecation("functorch.grad_and_value", FUNCTORCH, "torch.func.grad_and_value", NOT_IN_TORCHFIX, rewrite="rename"),
    Deprecation(
        "functorch.make_functional", FUNCTORCH, "torch.func.functional_call", NOT_IN_TORCHFIX,
        note="it calls a module with a dict of parameters instead of returning a function and a tuple",
    ),
    Deprecation(
        "functorch.make_functional_with_buffers", FUNCTORCH, "torch.func.functional_call", NOT_IN_TORCHFIX,
        note="it calls a module with dicts of parameters and buffers instead of returning a function and tuples",
    ),
    Deprecation(
        "functorch.combine_state_for_ensemble", FUNCTORCH, "torch.func.stack_module_state", NOT_IN_TORCHFIX,
        note="it returns dicts of stacked parameters and buffers, used with `torch.func.functional_call`",
    ),
    # -- TFM604: device-specific AMP entry points ---------------------------------------------
    Deprecation(
        "torch.cuda.amp.autocast", AMP, "torch.amp.autocast(\"cuda\", ...)", NOT_IN_TORCHFIX,
        rewrite="autocast", device="cuda", aliases=("torch.cuda.amp.autocast_mode.autocast",),
    ),
    Deprecation(
        "torch.cpu.amp.autocast", AMP, "torch.amp.autocast(\"cpu\", ...)", NOT_IN_TORCHFIX,
        rewrite="autocast", device="cpu", aliases=("torch.cpu.amp.autocast_mode.autocast",),
    ),
    Deprecation(
        "torch.cuda.amp.GradScaler", AMP, "torch.amp.GradScaler(\"cuda\", ...)", NOT_IN_TORCHFIX,
        rewrite="device_first", device="cuda", aliases=("torch.cuda.amp.grad_scaler.GradScaler",), since="2.3",
    ),
    Deprecation(
        "torch.cpu.amp.GradScaler", AMP, "torch.amp.GradScaler(\"cpu\", ...)", NOT_IN_TORCHFIX,
        rewrite="device_first", device="cpu", aliases=("torch.cpu.amp.grad_scaler.GradScaler",), since="2.3",
    ),
    Deprecation(
        "torch.cuda.amp.custom_fwd", AMP, "torch.amp.custom_fwd(device_type=\"cuda\")", NOT_IN_TORCHFIX,
        rewrite="device_keyword", device="cuda", aliases=("torch.cuda.amp.autocast_mode.custom_fwd",), since="2.4",
    ),
    Deprecation(
        "torch.cuda.amp.custom_bwd", AMP, "torch.amp.custom_bwd(device_type=\"cuda\")", NOT_IN_TORCHFIX,
        rewrite="device_keyword", device="cuda", aliases=("torch.cuda.amp.autocast_mode.custom_bwd",), since="2.4",
    ),
)

# The old signatures the argument rewrites map (positional order matters; read off torch 2.13).
AUTOCAST_PARAMETERS = ("enabled", "dtype", "cache_enabled")
# Global settings `torch.amp.autocast` reads when `dtype` / `cache_enabled` are not given
# (`torch.cuda.amp.autocast` passed float16 / bfloat16 and True explicitly).
AUTOCAST_GLOBALS = frozenset(
    {"set_autocast_dtype", "set_autocast_gpu_dtype", "set_autocast_cpu_dtype", "set_autocast_cache_enabled"}
)


def for_rule(code: str) -> dict[str, Deprecation]:
    """Qualified name (aliases included) -> entry, for one rule."""
    table: dict[str, Deprecation] = {}
    for entry in DEPRECATIONS:
        if entry.rule == code:
            for name in (entry.name, *entry.aliases):
                table[name] = entry
    return table


def entries(code: str) -> Iterator[Deprecation]:
    return (entry for entry in DEPRECATIONS if entry.rule == code)


# What each argument rewrite guarantees (the rules' docs explain why).
REWRITE_SAFETY = {
    "rename": "safe",
    "qr": "safe (literal `some`)",
    "cholesky": "safe",
    "range": "safe (integer literals)",
    "chain_matmul": "safe; unsafe with `*matrices`",
    "matrix_rank": "unsafe (without `tol`)",
    "upsample": "unsafe",
    "pytree": "unsafe",
    "autocast": "safe",
    "device_first": "safe",
    "device_keyword": "safe",
}


def docs_table(code: str) -> str:
    """The rule's APIs as a Markdown table, for ``--explain``."""
    rows = ["| deprecated | use instead | fix | TorchFix |", "|---|---|---|---|"]
    for entry in entries(code):
        fix = REWRITE_SAFETY[entry.rewrite] if entry.rewrite else "reported"
        torchfix = " / ".join(entry.torchfix) or "-"
        rows.append(f"| `{entry.name}` | `{entry.replacement}` | {fix} | {torchfix} |")
    return "\n".join(rows)
