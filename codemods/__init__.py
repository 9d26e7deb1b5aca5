"""torchfix-mod's rules, one sub-package per rule family, one rule per module.

Every rule decides on the file's semantic model (``torchfix_mod/semantic.py``, built from
Python's ``ast``) and expresses its fix as edit intents that ``torchfix_mod/cst_engine.py``
applies with LibCST. The engine names no rule: ``torchfix_mod.rule.load_rules`` walks this
package and loads every ``Rule`` subclass of a module whose name does not start with ``_``.

- ``containers``: layers and parameters kept in plain Python lists and dicts (TFM101-TFM104);
- ``attributes``: tensors stored as plain attributes of an nn.Module (TFM301, TFM302);
- ``module_api``: how an nn.Module is written and called (TFM201, TFM401, TFM402);
- ``deprecated``: deprecated and removed PyTorch APIs (TFM501-TFM503, TFM601-TFM604);
- ``torchfix``: TorchFix's TOR checks, as TFM701-TFM710;
- ``_shared``: the analysis more than one family uses.

A family's shared analysis is a ``_``-prefixed module inside its package; a module of one
family imports from its own package and from ``_shared`` only.
"""
