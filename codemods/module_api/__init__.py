"""How an nn.Module is written and called: TFM201 (an in-place update in ``forward`` that
autograd cannot survive), TFM401 (an ``__init__`` that never calls ``super().__init__()``) and
TFM402 (``module.forward(x)`` called directly, so its hooks never run).

The three rules share no analysis among themselves; what they use beyond the semantic model
(the scan of ``self.<attr>`` stores, the tensor factories) is also used by the ``attributes``
family and lives in ``codemods/_shared``.
"""
