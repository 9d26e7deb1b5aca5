"""Weight initialization written with the old nn.init names (no trailing underscore)."""

import torch
import torch.nn as nn
from torch.nn import init
from torch.nn.init import kaiming_normal


def init_weights(m):
    if isinstance(m, nn.Linear):
        torch.nn.init.xavier_uniform(m.weight)
        nn.init.constant(m.bias, 0.01)
    elif isinstance(m, nn.Conv2d):
        kaiming_normal(m.weight, mode="fan_out", nonlinearity="relu")
        init.constant(m.bias, 0.0)


def build_net():
    # 1x4x4 image -> conv 3x3 -> 2x2x2 -> 8 features
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 4), nn.Linear(4, 2))
    net.apply(init_weights)
    return net
