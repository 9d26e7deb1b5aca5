"""Hand-made weights created with requires_grad=True but stored as plain tensor attributes."""

import torch
import torch.nn as nn


class LR(nn.Module):
    """Logistic regression: sigmoid(x @ W + b)."""

    def __init__(self, dim, train_bias=True):
        super(LR, self).__init__()
        self.W = torch.zeros(dim, 1, dtype=torch.float, requires_grad=True)  # Weight
        self.b = torch.zeros(1, requires_grad=train_bias)  # bias

    def forward(self, x):
        z = x @ self.W + self.b
        return torch.sigmoid(z)


class TemperatureScaledClassifier(nn.Module):
    """A linear classifier whose logits are divided by a learned temperature."""

    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.temperature = torch.ones(1, requires_grad=True)

    def forward(self, x):
        return self.fc(x) / self.temperature
