"""Positional encoding and causal self-attention that keep tensors as plain attributes."""

import torch
import torch.nn as nn


class PositionalEncoding(nn.Module):
    def __init__(self, hidden_dim, max_len=16):
        super().__init__()
        pe = torch.zeros(max_len, hidden_dim)
        position = torch.arange(0, max_len).unsqueeze(1).float()
        div_term = torch.exp(torch.arange(0, hidden_dim, 2).float() * (-torch.log(torch.tensor(10000.0)) / hidden_dim))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.pe = pe.unsqueeze(0)

    def forward(self, x):
        # x : (bs, seq_len, hidden_dim)
        return x + self.pe[:, : x.size(1)]


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden_dim, max_len=16):
        super().__init__()
        self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim)
        self.out = nn.Linear(hidden_dim, hidden_dim)
        self.scale = hidden_dim**-0.5
        self.mask = torch.tril(torch.ones(max_len, max_len))

    def forward(self, x):
        seq_len = x.size(1)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-2, -1) * self.scale
        scores = scores.masked_fill(self.mask[:seq_len, :seq_len] == 0, float("-inf"))
        return self.out(torch.softmax(scores, dim=-1) @ v)


class TinyCausalEncoder(nn.Module):
    def __init__(self, hidden_dim=8, max_len=16):
        super().__init__()
        self.pos = PositionalEncoding(hidden_dim, max_len)
        self.attn = CausalSelfAttention(hidden_dim, max_len)

    def forward(self, x):
        x = self.pos(x)
        return x + self.attn(x)
