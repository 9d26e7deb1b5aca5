"""torchfix-mod: find and fix the nn.Module mistakes that silently break PyTorch training."""

__version__ = "0.1.0"


def _rules_beside_the_package() -> None:
    """In a source checkout the rules live in the top-level ``codemods/`` directory; installed,
    they are ``torchfix_mod/codemods``. Let a checkout that is run without installing it (a
    second working tree, ``PYTHONPATH=.``) find its own rules under the installed name."""
    import os
    import sys

    here = os.path.dirname(__file__)
    if os.path.isdir(os.path.join(here, "codemods")) or f"{__name__}.codemods" in sys.modules:
        return
    rules = os.path.join(os.path.dirname(here), "codemods")
    init = os.path.join(rules, "__init__.py")
    if not os.path.isfile(init):
        return
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{__name__}.codemods", init, submodule_search_locations=[rules])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    setattr(sys.modules[__name__], "codemods", module)  # as the import system binds a submodule


_rules_beside_the_package()
