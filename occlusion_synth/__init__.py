"""occlusion_synth: realistic occluded-face training pairs from facial landmarks.

The public API is listed in ``__all__``. Attributes load lazily so that ``import occlusion_synth``
stays fast and never imports dlib, MediaPipe or torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type checkers and IDEs see the real types; at run time they load lazily
    from .errors import (DatasetFormatError, ImageReadError, LandmarkBackendError, NoFaceError,
                         OcclusionSynthError, PlacementError, TemplateError)
    from .io import read_image, write_image
    from .landmarks import detect, get_backend
    from .pairs import PairsConfig, Summary, generate_pairs, merge_pairs
    from .sources import get_reader
    from .templates import TemplateLibrary, load_templates
    from .transforms import BlockOcclude, Occlude, OcclusionParams
    from .types import Face, Sample, Skipped

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Face": "occlusion_synth.types",
    "Sample": "occlusion_synth.types",
    "Skipped": "occlusion_synth.types",
    "OcclusionSynthError": "occlusion_synth.errors",
    "ImageReadError": "occlusion_synth.errors",
    "NoFaceError": "occlusion_synth.errors",
    "LandmarkBackendError": "occlusion_synth.errors",
    "TemplateError": "occlusion_synth.errors",
    "PlacementError": "occlusion_synth.errors",
    "DatasetFormatError": "occlusion_synth.errors",
    "read_image": "occlusion_synth.io",
    "write_image": "occlusion_synth.io",
    "detect": "occlusion_synth.landmarks",
    "get_backend": "occlusion_synth.landmarks",
    "load_templates": "occlusion_synth.templates",
    "TemplateLibrary": "occlusion_synth.templates",
    "Occlude": "occlusion_synth.transforms",
    "BlockOcclude": "occlusion_synth.transforms",
    "OcclusionParams": "occlusion_synth.transforms",
    "PairsConfig": "occlusion_synth.pairs",
    "Summary": "occlusion_synth.pairs",
    "generate_pairs": "occlusion_synth.pairs",
    "merge_pairs": "occlusion_synth.pairs",
    "get_reader": "occlusion_synth.sources",
}

# Batch generation: ``generate_pairs(PairsConfig(...))`` and ``merge_pairs`` (occlusion_synth.pairs).
__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'occlusion_synth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
