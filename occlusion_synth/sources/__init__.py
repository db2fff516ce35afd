"""Dataset readers, one module per source, each in the dataset's real on-disk layout.

Every reader module defines ``iter_samples(root, **options) -> Iterator[Sample | Skipped]``
(streaming: it never loads the dataset into memory) and ``LABEL_MAP`` (source label -> canonical).
"""
from __future__ import annotations

import importlib
from types import ModuleType

_READERS = {
    "rafdb": "occlusion_synth.sources.rafdb",
    "affectnet": "occlusion_synth.sources.affectnet",
    "fer2013": "occlusion_synth.sources.fer2013",
    "ferplus": "occlusion_synth.sources.ferplus",
    "ckplus": "occlusion_synth.sources.ckplus",
    "folder": "occlusion_synth.sources.imagefolder",
    "demo": "occlusion_synth.sources.demo",
}

READER_NAMES = tuple(_READERS)


def get_reader(name: str) -> ModuleType:
    """Return the reader module for source ``name`` (one of ``READER_NAMES``)."""
    if name not in _READERS:
        raise ValueError(f"unknown source {name!r}; valid sources: {', '.join(READER_NAMES)}")
    return importlib.import_module(_READERS[name])
