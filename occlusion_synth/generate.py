"""Deprecated: paired generation moved to :mod:`occlusion_synth.pairs`.

``GenerateConfig`` is :class:`occlusion_synth.pairs.PairsConfig`, ``generate`` is
:func:`occlusion_synth.generate_pairs`, ``merge`` is :func:`occlusion_synth.pairs.merge_pairs`.
Kept one release so existing scripts keep working; importing it warns.
"""
from __future__ import annotations

import warnings

from .pairs import STAGES, PairsConfig, Summary, pair_seed, shard_of  # noqa: F401
from .pairs import generate_pairs as generate  # noqa: F401
from .pairs import merge_pairs as merge  # noqa: F401

GenerateConfig = PairsConfig

warnings.warn("occlusion_synth.generate is deprecated; use occlusion_synth.generate_pairs / "
              "occlusion_synth.pairs", DeprecationWarning, stacklevel=2)
