"""The one face-crop kernel: generation, preview, evaluation and prediction all frame faces here.

A model sees at inference exactly the framing it was trained on only if every caller crops the
same way, so this is the single implementation (``generate --crop face``, ``occsynth preview``,
``fer-pi predict`` / ``evaluate`` face crops).

The crop is a square around the 68 landmarks' bounding box:

- side = ``max(box width, box height) * (1 + 2 * margin)`` (``margin`` of the box side added on
  each side, rounded to whole pixels, at least 2);
- centre = the box centre raised by 10 % of the box height (room for the forehead, since the
  iBUG-68 points stop at the brows);
- pixels outside the image are black (zero padding), so the face keeps its position and scale.

An optional resize follows (:func:`resize_image`): ``size`` is the side of a square result, or
the longer side of a non-square one; landmarks move with pixel centres at integer coordinates
(``x' = (x + 0.5) * s - 0.5``).

Nothing here draws random numbers or imports the rest of the package.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

DEFAULT_MARGIN = 0.25
FOREHEAD_RAISE = 0.1  # centre moves up by this fraction of the landmark box height


@dataclass(frozen=True)
class CropBox:
    """A square crop window in source-image pixels (may extend past the image borders).

    Attributes:
        left, top: top-left corner (integers; may be negative).
        side: width = height in pixels.
    """

    left: int
    top: int
    side: int

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``, exclusive right/bottom."""
        return self.left, self.top, self.left + self.side, self.top + self.side


@dataclass(frozen=True)
class FaceCrop:
    """Result of :func:`face_crop`.

    Attributes:
        image: ``(h, w, 3) uint8`` RGB crop (square unless ``size`` resized a non-square frame).
        landmarks: ``(68, 2) float32`` landmarks in crop pixels.
        box: the crop window in source pixels (None when no crop was made).
    """

    image: np.ndarray
    landmarks: np.ndarray
    box: Optional[CropBox]


def face_crop_box(landmarks: np.ndarray, margin: float = DEFAULT_MARGIN) -> CropBox:
    """The square crop window around ``landmarks`` (see the module docstring).

    Args:
        landmarks: ``(N, 2)`` float x, y in image pixels (N >= 2; normally 68).
        margin: extra room on each side, as a fraction of the landmark box's longer side (>= 0).

    Raises:
        ValueError: ``landmarks`` is not ``(N, 2)`` finite, or ``margin`` is negative.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[1] != 2 or len(lm) < 2 or not np.isfinite(lm).all():
        raise ValueError(f"landmarks must be a finite (N, 2) array, got shape {lm.shape}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    (x0, y0), (x1, y1) = lm.min(axis=0), lm.max(axis=0)
    side = max(2, int(round(max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin))))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 - FOREHEAD_RAISE * (y1 - y0) - side / 2))
    return CropBox(left, top, side)


def crop_square(image: np.ndarray, box: CropBox, pad_value: int = 0) -> np.ndarray:
    """Cut ``box`` out of ``image``, padding with ``pad_value`` (black) where it leaves the frame.

    Args:
        image: ``(H, W, C)`` or ``(H, W)`` uint8.
        box: the window.
        pad_value: grey level of the pixels beyond the frame (0 in generated pairs).

    Returns:
        ``(box.side, box.side[, C]) uint8``, C-contiguous.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box.xyxy
    region = image[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    pad = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    if any(pad):
        if region.size == 0:  # window entirely outside the frame
            shape = (box.side, box.side) + image.shape[2:]
            return np.full(shape, pad_value, image.dtype)
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_CONSTANT, value=(pad_value,) * 4)
    return np.ascontiguousarray(region)


def output_size(width: int, height: int, size: int) -> tuple[int, int]:
    """``(w, h)`` after resizing to ``size``: square -> ``size x size``; otherwise longer side = ``size``."""
    if width == height:
        return size, size
    if width >= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


def resize_image(image: np.ndarray, landmarks: Optional[np.ndarray], size: Optional[int]
                 ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Resize to ``size`` (see :func:`output_size`), moving ``landmarks`` along.

    INTER_AREA when shrinking, INTER_LINEAR when enlarging. ``size=None`` returns the input.

    Returns:
        ``(image, landmarks (N, 2) float64 or None)``.
    """
    lm = None if landmarks is None else np.asarray(landmarks, np.float64)
    if not size:
        return image, lm
    h, w = image.shape[:2]
    nw, nh = output_size(w, h, int(size))
    if (nw, nh) == (w, h):
        return image, lm
    interp = cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR
    image = cv2.resize(image, (nw, nh), interpolation=interp)
    if lm is not None:
        lm = (lm + 0.5) * (nw / w, nh / h) - 0.5
    return image, lm


def face_crop(image: np.ndarray, landmarks: np.ndarray, margin: float = DEFAULT_MARGIN,
              size: Optional[int] = None, crop: bool = True, pad_value: int = 0) -> FaceCrop:
    """Frame a face: square crop around ``landmarks`` (``crop=True``), then resize to ``size``.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        landmarks: ``(68, 2)`` float x, y in image pixels.
        margin: see :func:`face_crop_box`.
        size: output side (square) or longer side; None keeps the pixels.
        crop: False keeps the whole frame (only the resize applies).
        pad_value: grey level beyond the frame (see :func:`crop_square`).

    Returns:
        :class:`FaceCrop` with landmarks moved into the result's pixels.
    """
    lm = np.asarray(landmarks, np.float64)
    box = None
    if crop:
        box = face_crop_box(lm, margin)
        image = crop_square(image, box, pad_value)
        lm = lm - (box.left, box.top)
    image, lm = resize_image(image, lm, size)
    return FaceCrop(image, lm.astype(np.float32), box)
