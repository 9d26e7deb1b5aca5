"""A linear-regression training step written with the old autograd.Variable wrapper."""

import torch
from torch.autograd import Variable


class LinearRegression(torch.nn.Module):
    def __init__(self, input_size, output_size):
        super().__init__()
        self.linear = torch.nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.linear(x)


def to_variables(x_train, y_train):
    inputs = Variable(x_train)
    labels = Variable(y_train)
    return inputs, labels


def make_leaf(t):
    return Variable(t, requires_grad=True)


def make_weight(n):
    return Variable(torch.ones(n, 1), requires_grad=True)


def train_step(model, optimizer, x_train, y_train):
    criterion = torch.nn.MSELoss()
    inputs, labels = to_variables(x_train, y_train)
    outputs = model(inputs)
    loss = criterion(outputs, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
