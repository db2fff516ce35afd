"""occlusion_synth: realistic occluded-face training pairs from facial landmarks.

The public API is listed in ``__all__``. Attributes load lazily so that ``import occlusion_synth``
stays fast and never imports dlib, MediaPipe or torch.
"""
from __future__ import annotations

import importlib
from typing import Any

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
    "get_reader": "occlusion_synth.sources",
}

# Batch generation lives in ``occlusion_synth.generate`` (GenerateConfig, generate, merge); it is
# not re-exported here because the function ``generate`` would clash with the submodule's name.
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
