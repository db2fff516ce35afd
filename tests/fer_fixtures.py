"""Tiny fake paired datasets in the on-disk format of ``occsynth generate`` (for fer_pi tests).

Not a conftest: import it (``from tests.fer_fixtures import make_tiny_manifest`` or, with ``tests``
on ``sys.path``, ``from fer_fixtures import make_tiny_manifest``).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from occlusion_synth.io import write_image
from occlusion_synth.labels import label_name

COLUMNS = ("id", "split", "label", "label_name", "clean", "occluded", "mask", "category", "template",
           "occluded_fraction", "landmark_source", "seed")


def make_tiny_manifest(root: str | Path, n_per_class: int = 2, size: int = 32, classes: int = 7,
                       seed: int = 0, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """Write ``root/{clean,occluded,mask}/{split}/{class}/{id}.png`` and ``root/manifest.csv``.

    Each class is a distinct pattern (a bright horizontal band at a class-dependent height on a
    noisy background, so a net can learn it); the occluded image covers a random rectangle with a
    flat grey "occluder" and the mask marks it (uint8 0/255).

    Returns:
        Path of ``manifest.csv``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for split in splits:
        for label in range(classes):
            name = label_name(label)
            for k in range(n_per_class):
                sid = f"{split}_{label}_{k:03d}"
                clean = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
                y = int((label + 0.5) * size / classes)
                band = max(1, size // (2 * classes))
                clean[max(0, y - band):y + band, :, :] = (200, 150 + 10 * label, 100)
                h, w = int(rng.integers(size // 4, size // 2)), int(rng.integers(size // 4, size // 2))
                y0, x0 = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
                mask = np.zeros((size, size), np.uint8)
                mask[y0:y0 + h, x0:x0 + w] = 255
                occluded = clean.copy()
                occluded[mask > 0] = (128, 128, 128)
                rel = {kind: f"{kind}/{split}/{name}/{sid}.png" for kind in ("clean", "occluded", "mask")}
                write_image(root / rel["clean"], clean)
                write_image(root / rel["occluded"], occluded)
                write_image(root / rel["mask"], mask)
                rows.append(dict(id=sid, split=split, label=label, label_name=name, **rel,
                                 category="block", template="block/rect",
                                 occluded_fraction=f"{(mask > 0).mean():.4f}", landmark_source="none",
                                 seed=seed))
    path = root / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(autouse=False)
def one_thread():
    """Run a test with one torch thread: on a shared 2-core machine, tiny convolutions are ~20x
    faster single-threaded than fighting other processes for two threads. Import it into a test
    module (``from fer_fixtures import one_thread``) and mark it ``autouse`` with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
