"""A small DCGAN-style generator whose weights are initialised through `.data`."""

import torch
import torch.nn as nn


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.constant_(m.bias, 0)


class Generator(nn.Module):
    def __init__(self, nz=8, ngf=4, nc=3, palette=None):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )
        self.colour = nn.Linear(nc, nc)
        if palette is not None:
            with torch.no_grad():
                self.colour.weight.copy_(palette)  # start from a known colour mix
        self.apply(weights_init)

    def forward(self, z):
        img = self.main(z)
        return self.colour(img.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
