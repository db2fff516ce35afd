"""The feature-space discriminator D of Section 4.3.1 (a five-layer CNN, Section 5.1)."""
from __future__ import annotations

import torch
from torch import nn


class Discriminator(nn.Module):
    """Five convolutional layers on the tapped ``layer2`` map, one logit per sample.

    ``D(h)`` is the probability that ``h`` comes from the clean (teacher) network; the module returns
    its logit so the losses can use ``BCEWithLogits`` (stable, no sigmoid-then-log).

    Layers (``C = in_channels``; widths floored at 8): conv3x3 C->C/2, conv3x3 s2 C/2->C/4,
    conv3x3 s2 C/4->C/8, conv3x3 C/8->C/16, each with LeakyReLU(0.2), then conv3x3 C/16->1 averaged
    over space. For ResNet-50 at 224 px: (B,512,28,28) -> (B,256,28,28) -> (B,128,14,14) ->
    (B,64,7,7) -> (B,32,7,7) -> (B,1,7,7) -> (B,). No normalisation layers: D sees real and fake
    batches separately and batch statistics would leak which is which.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        w = [max(8, in_channels // d) for d in (2, 4, 8, 16)]
        act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w[0], 3, padding=1), act(),
            nn.Conv2d(w[0], w[1], 3, stride=2, padding=1), act(),
            nn.Conv2d(w[1], w[2], 3, stride=2, padding=1), act(),
            nn.Conv2d(w[2], w[3], 3, padding=1), act(),
            nn.Conv2d(w[3], 1, 3, padding=1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h ``(B, C, h, w)`` features. Returns ``(B,)`` logits of "comes from the clean view"."""
        return self.net(h).mean(dim=(1, 2, 3))
