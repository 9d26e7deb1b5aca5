"""Tensors stored as plain attributes of an nn.Module, which ``.to()``, ``state_dict()`` and
the optimizer never see: TFM301 (a constant tensor -> a registered buffer), TFM302 (a tensor
created with ``requires_grad=True`` -> an ``nn.Parameter``) and TFM303 (a converted
``nn.Parameter``, a plain tensor whenever the conversion copies -> the conversion inside).

``_tensor_attributes`` holds what the two share: which expressions certainly are tensors,
which ``self.<attr>`` tensors ``__init__`` stores, and whether such an attribute may become a
buffer or a parameter (``TensorAttributeRule``, the base of both rules).
"""
