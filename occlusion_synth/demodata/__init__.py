"""The embedded demo dataset: real public-domain faces warped into seven expressions.

``build_demo_dataset(out, ...)`` writes a small expression dataset in the RAF-DB "basic" layout
(read it with ``occlusion_synth.sources.rafdb`` or ``demo``); see docs/demo_dataset.md.
Modules: ``warps`` (similarity, thin-plate spline), ``expressions`` (per-class landmark
displacements, mouth/furrow painting), ``variation`` (pose and photometric jitter), ``render``
(one face), ``build`` (the dataset on disk).
"""
from __future__ import annotations

from .build import HELD_OUT_PHOTOS, TEST_PHOTOS, TRAIN_PHOTOS, build_demo_dataset

__all__ = ["build_demo_dataset", "TRAIN_PHOTOS", "TEST_PHOTOS", "HELD_OUT_PHOTOS"]
