"""The networks of the digits zoo: a small UNet (epsilon-prediction) and three digit classifiers.

All of them work on 8x8 single-channel images in [-1, 1] (scikit-learn's digits, pixel values
0..16 mapped by x / 8 - 1). Pure PyTorch, CPU-friendly: one UNet call on 64 images takes a few ms.

Classifiers (different architectures and seeds, all trained on the same train split):
- ``verifier``: a 3-layer CNN (ReLU, max-pool). The verifier that search methods select with.
- ``guide``: a LeNet-style CNN (5x5 kernels, SiLU, average pooling). The second ("local") verifier
  of the dual-verifier scheme: local search takes its gradients from it.
- ``evaluator``: an MLP on the flattened pixels. Held out: never used by any search; it measures
  what was really achieved.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from .._embeddings import sinusoidal_embedding

IMAGE_SIZE = 8
NUM_CLASSES = 10


# ----------------------------------------------------------------------------------------------
# the diffusion UNet


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class DigitsUNet(nn.Module):
    """UNet over 8x8 -> 4x4 -> 2x2 predicting the noise epsilon of x_t at train timestep t.

    Args:
        channels: widths of the three resolutions (8x8, 4x4, 2x2).
        temb: time-embedding width.
    """

    def __init__(self, channels=(32, 48, 64), temb: int = 64):
        super().__init__()
        c1, c2, c3 = channels
        self.channels, self.temb_dim = tuple(channels), temb
        self.time = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(1, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, temb)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = ResBlock(c1, c2, temb)
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.mid = ResBlock(c2, c3, temb)
        self.up2 = ResBlock(c3 + c2, c2, temb)
        self.up1 = ResBlock(c2 + c1, c1, temb)
        self.norm_out = nn.GroupNorm(8, c1)
        self.conv_out = nn.Conv2d(c1, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(sinusoidal_embedding(t, self.temb_dim))
        h1 = self.down1(self.conv_in(x), emb)  # 8x8
        h2 = self.down2(self.pool1(h1), emb)  # 4x4
        h = self.mid(self.pool2(h2), emb)  # 2x2
        h = self.up2(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h2], 1), emb)
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h1], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


# ----------------------------------------------------------------------------------------------
# the classifiers


class VerifierCNN(nn.Module):
    """3 conv layers (ReLU, max-pool after the second), global average pool, linear head."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * w, NUM_CLASSES)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


class GuideLeNet(nn.Module):
    """LeNet-style: 5x5 conv, SiLU, average pool, 3x3 conv, SiLU, two linear layers."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 5, padding=2), nn.SiLU(), nn.AvgPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.SiLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 16, 64), nn.SiLU(), nn.Linear(64, NUM_CLASSES))

    def forward(self, x):
        return self.head(self.features(x))


class EvaluatorMLP(nn.Module):
    """MLP on the 64 flattened pixels: 64 -> hidden -> hidden -> 10 (ReLU, dropout)."""

    def __init__(self, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(IMAGE_SIZE * IMAGE_SIZE, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, NUM_CLASSES),
        )

    def forward(self, x):
        return self.net(x)


CLASSIFIER_ARCHS = {"verifier": VerifierCNN, "guide": GuideLeNet, "evaluator": EvaluatorMLP}


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
