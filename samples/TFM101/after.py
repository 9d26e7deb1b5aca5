"""A small Transformer decoder whose layers live in a plain Python list."""

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

    def forward(self, srcQ, srcK, srcV):
        batch, seq_len, hidden_dim = srcQ.shape
        Q = self.fcQ(srcQ).view(batch, -1, self.num_head, self.head_dim).transpose(1, 2)
        K = self.fcK(srcK).view(batch, -1, self.num_head, self.head_dim).transpose(1, 2)
        V = self.fcV(srcV).view(batch, -1, self.num_head, self.head_dim).transpose(1, 2)
        scores = Q @ K.transpose(-2, -1) / self.head_dim**0.5
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


class DecoderLayer(nn.Module):
    def __init__(self, hidden_dim, num_head, inner_dim):
        super().__init__()
        self.multiheadattention = MultiHeadAttention(hidden_dim, num_head)
        self.ffn = FeedForward(hidden_dim, inner_dim)
        self.layerNorm = nn.LayerNorm(hidden_dim)

    def forward(self, x):
        x = self.layerNorm(x + self.multiheadattention(x, x, x))
        return self.layerNorm(x + self.ffn(x))


class Decoder(nn.Module):
    def __init__(self, vocab_size, N, hidden_dim, num_head, inner_dim):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_dim)

        self.dec_layers = nn.ModuleList()
        for i in range(N):
            self.dec_layers.append(DecoderLayer(hidden_dim, num_head, inner_dim))

        self.finalFc = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens):
        output = self.embedding(tokens)
        for layer in self.dec_layers:
            output = layer(output)
        return self.finalFc(output)
