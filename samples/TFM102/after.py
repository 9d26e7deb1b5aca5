"""A calculator model that keeps its learnable Add steps in a plain Python dict."""

import torch
import torch.nn as nn


class Add(nn.Module):
    """Adds a learnable offset, initialised to ``value`` for every feature."""

    def __init__(self, value, features):
        super().__init__()
        self.value = nn.Parameter(torch.full((features,), float(value)))

    def forward(self, x):
        return x + self.value


class Calculator(nn.Module):
    def __init__(self, features=4):
        super().__init__()
        self.proj = nn.Linear(features, features)
        self.add_dict = nn.ModuleDict({
            'add2': Add(2, features),
            'add3': Add(3, features),
            'add5': Add(5, features),
        })

    def forward(self, x):
        # y = ((proj(x) + 3) + 2) + 5
        x = self.proj(x)
        x = self.add_dict['add3'](x)
        x = self.add_dict['add2'](x)
        x = self.add_dict['add5'](x)
        return x
