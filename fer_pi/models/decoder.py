"""The reconstruction decoder F'_o of Section 4.3.2 (three deconvolutional layers, Section 5.1)."""
from __future__ import annotations

import torch
from torch import nn


class Decoder(nn.Module):
    """Three upsampling layers from the stride-8 tap back to a ``(3, S, S)`` image.

    Each layer is a *resize-convolution* (nearest-neighbour 2x upsampling, then a 3 x 3
    convolution): the paper's "deconvolutional layer" without the checkerboard artefacts of a
    strided transposed convolution, whose output pixels receive unequal numbers of kernel taps
    (Odena et al., 2016, "Deconvolution and checkerboard artifacts"). Each layer doubles the size
    exactly, so a ``ceil(S/8)`` map becomes ``8 * ceil(S/8)``; when ``S`` is not a multiple of 8 the
    surplus bottom/right rows and columns (the part of the last feature cell that lies beyond the
    image) are cropped. Shapes for ResNet-50 (``C = 512``):

    - 224 px: (B,512,28,28) -> (B,256,56,56) -> (B,128,112,112) -> (B,3,224,224)
    - 88 px:  (B,512,11,11) -> (B,256,22,22) -> (B,128,44,44)   -> (B,3,88,88)
    - 48 px:  (B,512,6,6)   -> (B,256,12,12) -> (B,128,24,24)   -> (B,3,48,48)
    - 100 px: (B,512,13,13) -> ... -> (B,3,104,104) -> cropped to (B,3,100,100)

    The output is in ``[0, 1]`` RGB (sigmoid), the space in which ``loss_rec`` compares it with the
    de-normalised clean image, and the space a picture of it is shown in.
    """

    def __init__(self, in_channels: int, out_size: int):
        super().__init__()
        self.out_size = int(out_size)
        w1, w2 = max(8, in_channels // 2), max(8, in_channels // 4)

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1)]

        self.net = nn.Sequential(
            *up(in_channels, w1), nn.BatchNorm2d(w1), nn.ReLU(True),
            *up(w1, w2), nn.BatchNorm2d(w2), nn.ReLU(True),
            *up(w2, 3),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h ``(B, C, ceil(S/8), ceil(S/8))``. Returns ``(B, 3, S, S)`` float in [0, 1]."""
        x = torch.sigmoid(self.net(h))
        s = self.out_size
        if x.shape[-2] < s or x.shape[-1] < s:
            raise ValueError(f"Decoder(out_size={s}) got a {tuple(h.shape[-2:])} map; needs >= {(s + 7) // 8}")
        return x[..., :s, :s]
