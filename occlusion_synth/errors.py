"""One exception hierarchy for the toolkit.

Every error a *user* can cause (a bad path, a broken image, an unknown option value) is an
``OcclusionSynthError`` subclass with a message that names the file or option and says what is
wrong. The CLI turns these into a one-line message and exit status 2, never a traceback.
"""
from __future__ import annotations


class OcclusionSynthError(Exception):
    """Base class of every error raised on purpose by occlusion_synth."""


class ImageReadError(OcclusionSynthError):
    """An image file is missing, truncated, empty, or not an image."""


class NoFaceError(OcclusionSynthError):
    """No face was found in an image by the requested landmark backend(s)."""


class LandmarkBackendError(OcclusionSynthError):
    """A landmark backend cannot run (model file missing, package not installed)."""


class TemplateError(OcclusionSynthError):
    """An occluder template (PNG or sidecar JSON) is unusable."""


class PlacementError(OcclusionSynthError):
    """No placement satisfied the constraints (e.g. the coverage range) within the retry budget."""


class DatasetFormatError(OcclusionSynthError):
    """A dataset root does not have the expected on-disk layout or a file is malformed."""
