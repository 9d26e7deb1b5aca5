"""The torch functions that build a new tensor from scratch: TFM301 and TFM302 take their
result for a tensor, TFM201 for a tensor with a dtype of its own."""

TENSOR_FACTORIES = frozenset(
    {
        "zeros", "ones", "empty", "full", "rand", "randn", "randint", "randperm",
        "arange", "range", "linspace", "logspace", "eye", "tensor", "as_tensor",
        "asarray", "from_numpy", "zeros_like", "ones_like", "empty_like", "full_like",
        "rand_like", "randn_like", "randint_like", "scalar_tensor", "empty_strided",
        "tril_indices", "triu_indices", "Tensor", "FloatTensor", "DoubleTensor",
        "HalfTensor", "BFloat16Tensor", "LongTensor", "IntTensor", "ShortTensor",
        "ByteTensor", "CharTensor", "BoolTensor", "polar", "complex", "hann_window",
        "hamming_window", "blackman_window", "bartlett_window", "kaiser_window",
    }
)
