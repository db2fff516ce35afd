"""Shared fixtures: real face photos fetched through pip (cached under .cache/), tiny images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """Real public-domain face photos: ``{name: path}`` (astronaut.png, obama*.jpg, biden.jpg, 32bit.png)."""
    from occlusion_synth.photos import fetch_photos

    return fetch_photos(REPO / ".cache")


@pytest.fixture(scope="session")
def photo_arrays(photos) -> dict[str, np.ndarray]:
    """The photos decoded as ``(H, W, 3) uint8 RGB`` arrays."""
    from occlusion_synth.io import read_image

    return {name: read_image(path) for name, path in photos.items()}


@pytest.fixture(scope="session")
def face_crops_100(photo_arrays) -> list:
    """100 px crops of four real faces with their dlib landmarks: ``[(image, landmarks), ...]``."""
    from occlusion_synth.landmarks import detect
    from occlusion_synth.preview import crop_face

    out = []
    for name in ("obama.jpg", "biden.jpg", "astronaut.png", "obama3.jpg"):
        face = detect(photo_arrays[name], backend="dlib", max_side=640)[0]
        out.append(crop_face(photo_arrays[name], face.landmarks, 100))
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
