"""Plain data types passed between the toolkit's stages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


@dataclass
class Face:
    """One detected face.

    Attributes:
        landmarks: ``(68, 2) float32`` x, y in image pixels, iBUG-68 order.
        box: ``(4,) float32`` face box ``x0, y0, x1, y1`` in image pixels.
        score: detector confidence (backend-specific scale; larger is more confident).
        backend: name of the backend that produced the landmarks (``dlib``, ``aligned``,
            ``mediapipe`` or ``provided``).
    """

    landmarks: np.ndarray
    box: np.ndarray
    score: float
    backend: str

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = (float(v) for v in self.box)
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@dataclass
class Sample:
    """One source image as a dataset reader yields it (lazy: pixels load on ``load()``).

    Attributes:
        id: unique, filesystem-safe stem used for every output file of this sample.
        split: ``train``, ``val`` or ``test``.
        label: canonical label (see :mod:`occlusion_synth.labels`); None for unlabelled photos
            (the ``folder`` reader on a flat folder).
        source: where it came from, for messages (a path, or ``file.csv:row``).
        load: returns the image as ``(H, W, 3) uint8 RGB``; raises ``ImageReadError``.
        landmarks: optional ``(68, 2) float32`` landmarks the dataset provides.
        box: optional ``(4,)`` face box ``x0, y0, x1, y1`` the dataset provides.
    """

    id: str
    split: str
    label: Optional[int]
    source: str
    load: Callable[[], np.ndarray]
    landmarks: Optional[np.ndarray] = None
    box: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)


@dataclass
class Skipped:
    """A source record a reader could not turn into a sample, with the reason."""

    id: str
    source: str
    reason: str
