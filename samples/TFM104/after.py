"""Per-task learnable loss weights kept in a plain Python dict of nn.Parameter."""

import torch
import torch.nn as nn


class UncertaintyWeightedLoss(nn.Module):
    """Combines task losses as sum(exp(-s) * loss + s), with one learnable log-variance s per task."""

    def __init__(self):
        super().__init__()
        self.log_vars = nn.ParameterDict({
            'depth': nn.Parameter(torch.zeros(1)),
            'normals': nn.Parameter(torch.zeros(1)),
            'segmentation': nn.Parameter(torch.zeros(1)),
        })

    def forward(self, losses):
        total = torch.zeros(1)
        for task, log_var in self.log_vars.items():
            total = total + torch.exp(-log_var) * losses[task] + log_var
        return total


class MultiTaskHead(nn.Module):
    """A shared trunk with one Linear head per task; the heads' outputs are scaled per task."""

    def __init__(self, in_features, tasks=('depth', 'normals', 'segmentation')):
        super().__init__()
        self.trunk = nn.Linear(in_features, in_features)
        self.heads = nn.ModuleDict({task: nn.Linear(in_features, 1) for task in tasks})
        self.loss = UncertaintyWeightedLoss()

    def forward(self, x, targets):
        features = torch.relu(self.trunk(x))
        losses = {task: ((head(features) - targets[task]) ** 2).mean() for task, head in self.heads.items()}
        return self.loss(losses)
