"""Regenerate ``torchfix_mod/torch_facts.py`` from the installed torch.

torchfix-mod never imports torch at run time; the facts it needs about
``torch.nn`` are read off a real installation once and kept as data.
Run: ``python scripts/gen_torch_facts.py > torchfix_mod/torch_facts.py``.
"""

import inspect

import torch
import torch.nn as nn


def module_classes() -> list[str]:
    return sorted(
        name
        for name in dir(nn)
        if inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module)
    )


def rejected_parameter_dict_keys() -> list[str]:
    rejected = []
    for key in sorted(dir(nn.ParameterDict())):
        try:
            nn.ParameterDict({key: nn.Parameter(torch.zeros(1))})
        except Exception:  # KeyError, TypeError, AttributeError: any refusal counts
            rejected.append(key)
    return rejected


def render(name: str, values: list[str], doc: str) -> str:
    body = "".join(f"        {v!r},\n" for v in values)
    return f"# {doc}\n{name} = frozenset(\n    (\n{body}    )\n)\n"


def main() -> None:
    print(f'"""Facts about torch.nn read off torch {torch.__version__.split("+")[0]} by scripts/gen_torch_facts.py."""\n')
    print(render("NN_MODULE_CLASSES", module_classes(), "Classes in torch.nn that are nn.Module subclasses."))
    print(render(
        "MODULE_ATTRIBUTES",
        sorted(dir(nn.Module())),
        "Attribute names an nn.Module instance already has: register_buffer(name) raises KeyError on them.",
    ))
    print(render(
        "PARAMETER_DICT_REJECTED_KEYS",
        rejected_parameter_dict_keys(),
        "Keys nn.ParameterDict rejects among its own attribute names (KeyError at construction).",
    ))
    print(render(
        "MODULE_DICT_ATTRIBUTES",
        sorted(dir(nn.ModuleDict())),
        "Attribute names of an nn.ModuleDict instance: a ModuleDict key equal to one raises KeyError.",
    ))


if __name__ == "__main__":
    main()
