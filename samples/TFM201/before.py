"""Encoder pieces whose residual and gating updates are written in place."""

import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, hidden_dim, num_head):
        super().__init__()
        self.num_head = num_head
        self.head_dim = hidden_dim // num_head
        self.fcQ = nn.Linear(hidden_dim, hidden_dim)
        self.fcK = nn.Linear(hidden_dim, hidden_dim)
        self.fcV = nn.Linear(hidden_dim, hidden_dim)
        self.fcOut = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, srcQ, srcK, srcV, mask=None):
        batch, seq_len, hidden_dim = srcQ.shape
        Q = self.fcQ(srcQ).view(batch, -1, self.num_head, self.head_dim).transpose(1, 2)
        K = self.fcK(srcK).view(batch, -1, self.num_head, self.head_dim).transpose(1, 2)
        V = self.fcV(srcV).view(batch, -1, self.num_head, self.head_dim).transpose(1, 2)
        scores = Q @ K.transpose(-2, -1) / self.head_dim**0.5
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e9)
        attention = torch.softmax(scores, dim=-1)
        output = (attention @ V).transpose(1, 2).reshape(batch, seq_len, hidden_dim)
        return self.fcOut(output)


class FeedForward(nn.Module):
    def __init__(self, hidden_dim, inner_dim):
        super().__init__()
        self.fc1 = nn.Linear(hidden_dim, inner_dim)
        self.fc2 = nn.Linear(inner_dim, hidden_dim)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(self, hidden_dim, num_head, inner_dim, dropout=0.1):
        super().__init__()
        self.multiheadattention = MultiHeadAttention(hidden_dim, num_head)
        self.ffn = FeedForward(hidden_dim, inner_dim)
        self.layerNorm = nn.LayerNorm(hidden_dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, input, mask=None):
        # input : (bs, seq_len, hidden_dim)
        output = self.multiheadattention(srcQ=input, srcK=input, srcV=input, mask=mask)
        output = self.dropout1(output)
        output += input
        output = self.layerNorm(output)

        output_ = self.ffn(output)
        output_ = self.dropout2(output_)
        output += output_
        output = self.layerNorm(output)

        # output : (bs, seq_len, hidden_dim)
        return output


class AttentionPooling(nn.Module):
    """Pools a sequence with softmax attention weights, zeroing padded positions."""

    def __init__(self, hidden_dim):
        super().__init__()
        self.score = nn.Linear(hidden_dim, 1)

    def forward(self, x, keep):
        # x : (bs, seq_len, hidden_dim), keep : (bs, seq_len) of 0/1
        weights = torch.softmax(self.score(x).squeeze(-1), dim=-1)
        weights *= keep
        return (weights.unsqueeze(-1) * x).sum(dim=1)


class SigmoidGate(nn.Module):
    """Scales features by a learned gate in (0, 2)."""

    def __init__(self, hidden_dim):
        super().__init__()
        self.gate = nn.Linear(hidden_dim, hidden_dim)

    def forward(self, x):
        gate = torch.sigmoid(self.gate(x))
        gate *= 2.0
        return x * gate
