"""Deprecated and removed PyTorch APIs and their replacements: TFM501 (``nn.init`` functions
without the trailing underscore), TFM502 (``register_backward_hook``), TFM503
(``torch.autograd.Variable``), TFM601 (removed torch functions), TFM602 (deprecated torch
functions and modules), TFM603 (``functorch`` -> ``torch.func``) and TFM604
(``torch.cuda.amp``/``torch.cpu.amp`` -> ``torch.amp``).

``_deprecations`` is the table of the APIs the TFM6xx rules look for, as data;
``_deprecated_api`` finds every reference to them through the file's imports and decides the
argument rewrites (``DeprecatedApiRule``, the base of TFM601-TFM604); ``_deprecated_edits``
holds the LibCST changes that write those fixes, imported only when a fix is written.
"""
