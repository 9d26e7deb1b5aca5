"""Learnable weights kept in plain Python lists of nn.Parameter."""

import torch
import torch.nn as nn
from torch.nn.parameter import Parameter


class Polynomial(nn.Module):
    """y = c0 + c1 * x + c2 * x**2 + ..., one learnable coefficient per power."""

    def __init__(self, coefficients=(3.0, 5.0)):
        super().__init__()
        self.coefficients = nn.ParameterList([Parameter(torch.Tensor([c])) for c in coefficients])

    def forward(self, x):
        y = torch.zeros_like(x)
        for power, c in enumerate(self.coefficients):
            y = y + c * x**power
        return y


class ScaledResidualStack(nn.Module):
    """A stack of residual Linear blocks, each output scaled by its own learnable gain."""

    def __init__(self, hidden_dim, num_layers, init_scale=0.1):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers)])
        self.scales = nn.ParameterList()
        for i in range(num_layers):
            self.scales.append(nn.Parameter(torch.full((hidden_dim,), init_scale)))

    def forward(self, x):
        for block, scale in zip(self.blocks, self.scales):
            x = x + scale * torch.relu(block(x))
        return x
