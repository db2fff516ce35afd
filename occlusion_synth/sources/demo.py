"""Reader of the embedded demo dataset (source name ``demo``).

The demo set is written in the RAF-DB "basic" layout, so this reader is the RAF-DB reader plus
two conveniences:

- if ``root`` does not exist, the dataset is first built there with the default options of
  :func:`occlusion_synth.demodata.build_demo_dataset` (7 classes x (60 train + 20 test),
  100 px, seed 0; the photos are fetched through pip into the cache on first use);
- each sample carries the face's 68 landmarks from ``demo_landmarks.json`` (the warp targets),
  so ``--landmarks provided`` works on it;
- each sample's ``meta["identity"]`` names the person pictured (from ``demo_info.json``), so
  ``val_fraction`` keeps a person out of both train and val.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

import numpy as np

from ..types import Sample, Skipped
from . import rafdb
from ._common import PathLike

LABEL_MAP = rafdb.LABEL_MAP


def iter_samples(root: PathLike, variant: str = "aligned", splits: Optional[Union[Iterable[str], str]] = None,
                 build: bool = True, cache_dir: Optional[PathLike] = None,
                 build_options: Optional[dict] = None) -> Iterator[Union[Sample, Skipped]]:
    """Stream the demo dataset at ``root`` (building it first if ``root`` does not exist).

    Args:
        root: the demo dataset folder (as written by ``occsynth demo-data ROOT``).
        variant: only ``"aligned"`` exists in a demo set.
        splits: ``train`` / ``test`` filter, as for :func:`occlusion_synth.sources.rafdb.iter_samples`.
        build: build the dataset with default options when ``root`` does not exist.
        cache_dir: photo cache used when building.
        build_options: keyword arguments for ``build_demo_dataset`` when building (default options
            if None), e.g. ``{"per_class": 5}``.

    Raises:
        DatasetFormatError: ``root`` exists but is not a RAF-DB-layout dataset.
    """
    root = Path(root)
    if build and not root.exists():
        from ..demodata import build_demo_dataset

        build_demo_dataset(root, cache_dir=cache_dir, **(build_options or {}))
    records = rafdb.iter_samples(root, variant=variant, splits=splits)
    lm_file = root / "demo_landmarks.json"
    landmarks = json.loads(lm_file.read_text())["landmarks"] if lm_file.is_file() else {}
    return _attach(records, landmarks, _identities(root))


def _identities(root: Path) -> dict[str, str]:
    """Sample id -> the person pictured (from demo_info.json's photo names), for identity-aware splits."""
    from ..photos import PHOTOS

    person = {p.name: p.identity for p in PHOTOS}
    try:
        samples = json.loads((root / "demo_info.json").read_text())["samples"]
        return {s["id"]: person.get(s["photo"], s["photo"]) for s in samples}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _attach(records, landmarks: dict, identities: dict) -> Iterator[Union[Sample, Skipped]]:
    for rec in records:
        if isinstance(rec, Sample):
            if rec.id in landmarks:
                rec.landmarks = np.asarray(landmarks[rec.id], np.float32)
            if rec.id in identities:
                rec.meta["identity"] = identities[rec.id]
        yield rec
