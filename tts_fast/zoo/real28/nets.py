"""The networks of the 28x28 zoo models: a class-conditional UNet and two classifiers.

All work on single-channel 28x28 images in [-1, 1] (see :mod:`.data`). Pure PyTorch and small, so
that they train on a CPU and ship as files of a few MB.

- :class:`UNet28`: predicts v (``v = alpha eps - sigma x0``) of x_t at train timestep t, given a
  class label per sample, or the null label :data:`NULL_LABEL` (= 10) for "no class": it was
  trained with the label dropped on part of each batch, so one network is both the
  class-conditional and the unconditional model.
- ``verifier`` (:class:`VerifierCNN28`, ReLU, max-pool, global average pool) and ``guide``
  (:class:`GuideLeNet28`, 5x5 kernels, SiLU, average pool, a dense head): two architectures,
  trained with different seeds, for the dual-verifier scheme (selection from one, gradients from the
  other). Neither is the judge: the results are judged by a third-party classifier (:mod:`.judge`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..._embeddings import sinusoidal_embedding
from ..nets import ResBlock, num_params
from .data import IMAGE_SIZE, NUM_CLASSES

NULL_LABEL = NUM_CLASSES  # the "no class" label of the unconditional model

__all__ = ["UNet28", "VerifierCNN28", "GuideLeNet28", "CLASSIFIER_ARCHS", "NULL_LABEL", "num_params"]


class UNet28(nn.Module):
    """UNet over 28x28 -> 14x14 -> 7x7 (one residual block per resolution, two at 7x7), v-prediction.

    Args:
        channels: widths at 28x28, 14x14 and 7x7 (multiples of 8: group norm uses 8 groups).
        temb: width of the time and label embeddings (added together).
    """

    def __init__(self, channels=(32, 64, 64), temb: int = 64):
        super().__init__()
        c1, c2, c3 = channels
        self.temb_dim = temb
        self.time = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.label = nn.Embedding(NUM_CLASSES + 1, temb)  # + the null label
        self.conv_in = nn.Conv2d(1, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, temb)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.down2 = ResBlock(c1, c2, temb)
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.mid1 = ResBlock(c2, c3, temb)
        self.mid2 = ResBlock(c3, c3, temb)
        self.up2 = ResBlock(c3 + c2, c2, temb)
        self.up1 = ResBlock(c2 + c1, c1, temb)
        self.norm_out = nn.GroupNorm(8, c1)
        self.conv_out = nn.Conv2d(c1, 1, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """v-prediction [B, 1, 28, 28] for x_t [B, 1, 28, 28] at train timesteps t [B] (float) and labels [B] (int64, 0..10)."""
        emb = self.time(sinusoidal_embedding(t, self.temb_dim)) + self.label(labels)
        h1 = self.down1(self.conv_in(x), emb)  # 28x28
        h2 = self.down2(self.pool1(h1), emb)  # 14x14
        h = self.mid2(self.mid1(self.pool2(h2), emb), emb)  # 7x7
        h = self.up2(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h2], 1), emb)
        h = self.up1(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), h1], 1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


class VerifierCNN28(nn.Module):
    """Four 3x3 conv layers (ReLU; max-pool to 14x14 and 7x7), global average pool, linear head."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(4 * w, NUM_CLASSES)

    def forward(self, x):
        """Logits [B, 10] of images [B, 1, 28, 28] in [-1, 1]."""
        return self.head(self.features(x).mean(dim=(2, 3)))


class GuideLeNet28(nn.Module):
    """LeNet-style: 5x5 conv, SiLU, average pool (14x14), 5x5 conv, SiLU, average pool (7x7), two linear layers."""

    def __init__(self, width: int = 16, hidden: int = 128):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 5, padding=2), nn.SiLU(), nn.AvgPool2d(2),
            nn.Conv2d(w, 2 * w, 5, padding=2), nn.SiLU(), nn.AvgPool2d(2),
        )
        side = IMAGE_SIZE // 4
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * side * side, hidden), nn.SiLU(), nn.Linear(hidden, NUM_CLASSES))

    def forward(self, x):
        """Logits [B, 10] of images [B, 1, 28, 28] in [-1, 1]."""
        return self.head(self.features(x))


CLASSIFIER_ARCHS = {"verifier": VerifierCNN28, "guide": GuideLeNet28}
