"""Analysis used by more than one rule family.

``_attributes``: the ``self.<attr> = value`` stores in the methods of a class and how an
attribute node sits in the code around it (TFM301 and TFM302 in ``attributes``, TFM402 in
``module_api``). ``_tensor_factories``: the torch functions that build a new tensor from scratch
(TFM301, TFM302, and TFM201 in ``module_api``).
"""
