"""What every landmark backend shares: the protocol, input checks and Face construction.

A backend is any object with a ``name`` and a ``detect(image) -> list[Face]`` method that returns
the faces it found, largest first, and an empty list when it finds none (the caller,
:func:`occlusion_synth.landmarks.detect`, turns "none" into a :class:`NoFaceError` naming the image).
"""
from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import numpy as np

from ..types import Face


@runtime_checkable
class LandmarkBackend(Protocol):
    """Structural type of a landmark backend."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return the faces in ``image`` ((H, W, 3) uint8 RGB), largest first; ``[]`` if none."""
        ...


def check_image(image: np.ndarray, name: Optional[str] = None) -> np.ndarray:
    """Validate a detector input and return it as a C-contiguous ``(H, W, 3) uint8`` array.

    Grayscale ``(H, W)`` or ``(H, W, 1)`` uint8 arrays are accepted and returned as three equal
    channels. dlib only accepts contiguous uint8 arrays and silently misreads strided views, so
    every backend goes through here.

    Raises:
        ValueError: not a numpy array, wrong number of dimensions/channels, wrong dtype, or empty.
    """
    what = f"image {name!r}" if name else "image"
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what}: expected a numpy array (H, W, 3) uint8 RGB, "
                         f"got {type(image).__name__}")
    if image.dtype == np.uint8 and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)):
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what}: expected shape (H, W, 3) RGB or (H, W) grayscale, got {image.shape} "
                         "(convert RGBA with occlusion_synth.io.read_image)")
    if image.dtype != np.uint8:
        raise ValueError(f"{what}: expected dtype uint8, got {image.dtype}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"{what}: too small for landmark detection ({image.shape[1]}x{image.shape[0]})")
    return np.ascontiguousarray(image)


def box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Tight ``(4,) float32`` box ``x0, y0, x1, y1`` around ``(N, 2)`` landmarks."""
    lm = np.asarray(landmarks, dtype=np.float32)
    return np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()], np.float32)


def make_face(landmarks: np.ndarray, box: np.ndarray, score: float, backend: str) -> Face:
    """Build a :class:`Face` with the documented dtypes ((68, 2) and (4,) float32)."""
    lm = np.asarray(landmarks, dtype=np.float32).reshape(68, 2)
    return Face(landmarks=lm, box=np.asarray(box, dtype=np.float32).reshape(4),
                score=float(score), backend=backend)


def largest_first(faces: list[Face]) -> list[Face]:
    """Sort faces by box area, largest first (ties keep the backend's order)."""
    return sorted(faces, key=lambda f: -f.area)
