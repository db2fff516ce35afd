"""The ``provided`` backend: 68 landmarks that come with the dataset instead of a detector.

Accepted sources:

* a ``(68, 2)`` (or flat ``(136,)``) array of x, y pixels;
* a CSV file per image: 68 rows ``x,y`` (an optional header row is skipped) or one row of 136
  numbers ``x1,y1,x2,y2,...``;
* a JSON file per image: ``{"landmarks": [[x, y], ...]}`` or a bare ``[[x, y], ...]`` list;
* AffectNet's ``facial_landmarks`` column, a string of 136 numbers ``"x1;y1;x2;y2;..."``
  (parse it with :func:`parse_landmark_string`).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import DatasetFormatError
from ..types import Face
from .base import box_from_landmarks, make_face

ProvidedLandmarks = Union[np.ndarray, list, str, os.PathLike]


def _as_68(values, source: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DatasetFormatError(f"{source}: landmarks are not numbers ({exc})") from None
    if arr.size != 136 or arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape not in ((68, 2), (1, 136))):
        raise DatasetFormatError(
            f"{source}: expected 68 landmarks as (68, 2) x,y pairs or 136 numbers, got shape {arr.shape}")
    arr = arr.reshape(68, 2)
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DatasetFormatError(f"{source}: landmark {bad} is not finite (NaN or inf)")
    return arr.astype(np.float32)


def parse_landmark_string(text: str, source: str = "<landmark string>") -> np.ndarray:
    """Parse AffectNet's ``facial_landmarks`` column: ``"x1;y1;x2;y2;...;x68;y68"``.

    Commas and whitespace are accepted as separators too.

    Returns:
        ``(68, 2) float32`` pixels.

    Raises:
        DatasetFormatError: not 136 finite numbers (the message names ``source``).
    """
    parts = [p for p in str(text).replace(",", ";").replace(" ", ";").split(";") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise DatasetFormatError(f"{source}: cannot parse landmark string ({exc})") from None
    return _as_68(values, source)


def _read_csv(path: Path) -> np.ndarray:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [[c.strip() for c in row if c.strip()] for row in csv.reader(fh)]
    rows = [r for r in rows if r]
    if rows:
        try:
            [float(c) for c in rows[0]]
        except ValueError:
            rows = rows[1:]  # header such as "x,y"
    try:
        values = [float(c) for row in rows for c in row]
    except ValueError as exc:
        raise DatasetFormatError(f"{path}: non-numeric landmark value ({exc})") from None
    return _as_68(values, str(path))


def _read_json(path: Path) -> np.ndarray:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}: invalid JSON ({exc})") from None
    if isinstance(data, dict):
        if "landmarks" not in data:
            raise DatasetFormatError(f"{path}: JSON object has no 'landmarks' key "
                                     f"(keys: {sorted(data)[:10]})")
        data = data["landmarks"]
    return _as_68(data, str(path))


def load_landmarks(provided: ProvidedLandmarks, source: Optional[str] = None) -> np.ndarray:
    """Turn any accepted landmark source into a ``(68, 2) float32`` array.

    Args:
        provided: an array/list, or a path to a ``.csv``/``.json`` file.
        source: name used in error messages for in-memory arrays.

    Raises:
        DatasetFormatError: missing file, unknown suffix, wrong count, non-numeric or NaN values.
    """
    if isinstance(provided, (str, os.PathLike)):
        path = Path(provided)
        if not path.is_file():
            raise DatasetFormatError(f"{path}: landmark file not found")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".json":
            return _read_json(path)
        raise DatasetFormatError(f"{path}: landmark files must be .csv or .json, got {suffix!r}")
    return _as_68(provided, source or "provided landmarks")


class ProvidedBackend:
    """Wraps dataset-provided landmarks as a backend: ``detect`` returns them as one face.

    Args:
        provided: see :func:`load_landmarks`.
        source: name used in error messages.
    """

    name = "provided"

    def __init__(self, provided: ProvidedLandmarks, source: Optional[str] = None):
        if isinstance(provided, (str, os.PathLike)):
            source = str(provided) if source is None else f"{source} ({provided})"
        self.source = source or "provided landmarks"
        self.landmarks = load_landmarks(provided, source)

    def detect(self, image: Optional[np.ndarray] = None) -> list[Face]:
        """The provided landmarks as one :class:`Face` (score 1.0).

        When ``image`` is given, landmarks far outside it (more than half its size) are
        rejected: that is the usual sign of coordinates in another frame (e.g. the uncropped
        original photo) or of swapped x/y columns.

        Raises:
            DatasetFormatError: landmarks far outside the image.
        """
        if image is not None:
            h, w = image.shape[:2]
            lm = self.landmarks
            far = (lm[:, 0] < -0.5 * w) | (lm[:, 0] > 1.5 * w) | (lm[:, 1] < -0.5 * h) | (lm[:, 1] > 1.5 * h)
            if far.any():
                i = int(np.flatnonzero(far)[0])
                raise DatasetFormatError(
                    f"{self.source}: landmark {i} at ({lm[i, 0]:.1f}, {lm[i, 1]:.1f}) lies far outside "
                    f"the {w}x{h} image (landmarks in another image's coordinates, or x/y swapped?)")
        return [make_face(self.landmarks, box_from_landmarks(self.landmarks), 1.0, self.name)]
