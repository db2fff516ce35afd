"""The paper's geometric occlusions for CK+: random square blocks and eye/mouth blocks.

Random blocks ``r8``, ``r16``, ``r24`` have side 8, 16, 24 pixels at the paper's 48 x 48
input, scaled to the image: ``side = round(k * min(H, W) / 48)``. The ``eyes`` block covers
both eyes, the ``mouth`` block the mouth, both from landmarks. Fills: ``grey`` (128),
``noise`` (uniform RGB noise from a recorded seed) or ``colour`` (a recorded RGB colour).
"""
from __future__ import annotations

import numpy as np

from ..landmarks.schemes import inter_ocular_distance

BLOCK_SIZES = {"r8": 8, "r16": 16, "r24": 24}
BLOCK_KINDS = ("r8", "r16", "r24", "eyes", "mouth")
BLOCK_FILLS = ("grey", "noise", "colour")

_EYES = list(range(36, 48))
_MOUTH = list(range(48, 68))
# padding around the landmark box, in inter-ocular distances (x, y)
_PAD = {"eyes": (0.3, 0.3), "mouth": (0.25, 0.25)}


def block_side(kind: str, shape: tuple[int, int]) -> int:
    """Side in pixels of a random block ``kind`` (``r8``/``r16``/``r24``) in an image of ``shape``."""
    return max(1, int(round(BLOCK_SIZES[kind] * min(int(shape[0]), int(shape[1])) / 48.0)))


def block_rect(kind: str, landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rectangle ``x0, y0, x1, y1`` (exclusive ends, clipped) of the ``eyes`` or ``mouth`` block."""
    lm = np.asarray(landmarks, np.float64)
    iod = inter_ocular_distance(lm)
    pts = lm[_EYES if kind == "eyes" else _MOUTH]
    px, py = (_PAD[kind][0] * iod, _PAD[kind][1] * iod)
    h, w = int(shape[0]), int(shape[1])
    x0 = int(np.clip(np.floor(pts[:, 0].min() - px), 0, w - 1))
    y0 = int(np.clip(np.floor(pts[:, 1].min() - py), 0, h - 1))
    x1 = int(np.clip(np.ceil(pts[:, 0].max() + px), x0 + 1, w))
    y1 = int(np.clip(np.ceil(pts[:, 1].max() + py), y0 + 1, h))
    return x0, y0, x1, y1


def fill_block(image: np.ndarray, rect, fill: str, colour=(128, 128, 128), noise_seed: int = 0):
    """Paint a rectangle.

    Args:
        image: ``(H, W, 3) uint8`` RGB (not modified).
        rect: ``(x0, y0, x1, y1)`` exclusive ends, inside the image.
        fill: ``grey``, ``noise`` or ``colour``.
        colour: RGB used by ``colour``.
        noise_seed: seed of the ``noise`` fill (so the block replays exactly).

    Returns:
        ``(image, mask)``: ``(H, W, 3) uint8`` and ``(H, W) uint8`` 0/255.
    """
    x0, y0, x1, y1 = (int(v) for v in rect)
    out = image.copy()
    if fill == "grey":
        out[y0:y1, x0:x1] = 128
    elif fill == "colour":
        out[y0:y1, x0:x1] = np.asarray(colour, np.uint8)
    elif fill == "noise":
        noise = np.random.default_rng(int(noise_seed)).integers(0, 256, (y1 - y0, x1 - x0, 3))
        out[y0:y1, x0:x1] = noise.astype(np.uint8)
    else:
        raise ValueError(f"fill must be one of {BLOCK_FILLS}, got {fill!r}")
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 255
    return out, mask
