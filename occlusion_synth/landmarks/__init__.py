"""Facial landmarks: one interface, ``detect(image) -> list[Face]``, over several backends.

Backends (``backend=``):

* ``"dlib"``: HOG (or CNN mmod, ``cnn=True``) face detector + dlib's 68-point shape predictor.
* ``"aligned"``: the 68-point predictor on the whole frame, no detection, for pre-cropped
  aligned faces (RAF-DB aligned 100x100, FER2013 48x48).
* ``"mediapipe"``: MediaPipe full-range face detection, then the face mesh on each face's crop,
  mapped to 68 points (:data:`schemes.MEDIAPIPE_TO_68`); no log lines reach the terminal.
* ``"provided"``: landmarks that come with the dataset (``provided=`` array, CSV or JSON path).
* ``"auto"`` (default): provided (when given), then dlib, then mediapipe, then aligned (aligned
  only for small, square-ish images that look like aligned crops); ``Face.backend`` records
  which one produced each face.

Every face has ``(68, 2) float32`` landmarks in image pixels (iBUG-68 order, 0-based, pixel
centres at integer coordinates), a ``(4,)`` box ``x0, y0, x1, y1``, a score and the backend name.
Backends load their models once per process (:func:`get_backend` is cached); dlib and MediaPipe
are imported only when a backend that needs them is first used. In multi-process pipelines
create backends inside each worker (MediaPipe graphs do not survive ``fork``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

import numpy as np

from ..errors import NoFaceError, OcclusionSynthError
from ..types import Face
from .base import LandmarkBackend, check_image
from .provided import ProvidedBackend, load_landmarks, parse_landmark_string

__all__ = ["detect", "get_backend", "BACKENDS", "LandmarkBackend", "AutoBackend",
           "parse_landmark_string", "load_landmarks", "looks_aligned"]

BACKENDS = ("auto", "dlib", "aligned", "mediapipe", "provided")

# options each backend accepts (``auto`` accepts the union and routes them)
_OPTIONS: dict[str, frozenset[str]] = {
    "dlib": frozenset({"upsample", "cnn", "max_side", "cascade_depth", "engine"}),
    "aligned": frozenset({"inset", "min_side", "refine", "one_pass_band", "cascade_depth", "engine"}),
    "mediapipe": frozenset({"max_faces", "min_confidence", "min_face"}),
    "provided": frozenset({"provided", "source"}),
}
_AUTO_OWN = frozenset({"aligned_fallback"})

# ``auto`` falls back to ``aligned`` only for images shaped like aligned face crops.
ALIGNED_MAX_SIDE = 256
ALIGNED_MAX_ASPECT = 1.35


def looks_aligned(image: np.ndarray) -> bool:
    """True for small, square-ish images (aligned face crops such as RAF-DB 100x100, FER 48x48)."""
    h, w = image.shape[:2]
    return max(h, w) <= ALIGNED_MAX_SIDE and max(h, w) / max(1, min(h, w)) <= ALIGNED_MAX_ASPECT


def _check_options(backend: str, options: dict[str, Any]) -> None:
    valid = _OPTIONS[backend] if backend != "auto" else (
        _AUTO_OWN | _OPTIONS["dlib"] | _OPTIONS["aligned"] | _OPTIONS["mediapipe"])
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for landmark backend {backend!r}; "
                         f"valid options: {sorted(valid)}")


def _pick(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in _OPTIONS[backend]}


class AutoBackend:
    """Tries provided (when given), dlib, mediapipe, then aligned; first one with a face wins.

    Args:
        aligned_fallback: allow the ``aligned`` last resort for images that
            :func:`looks_aligned`. It never fails, so it would "find" a face in any crop.
        **options: options of the sub-backends, each routed to the backend that accepts it.
    """

    name = "auto"

    def __init__(self, aligned_fallback: bool = True, **options: Any):
        _check_options("auto", options)
        self.aligned_fallback = bool(aligned_fallback)
        self.options = options

    def order(self, image: np.ndarray, provided: Any = None) -> list[str]:
        """Backend names that would be tried on ``image``, in order."""
        names = ["provided"] if provided is not None else []
        names += ["dlib", "mediapipe"]
        if self.aligned_fallback and looks_aligned(image):
            names.append("aligned")
        return names

    def detect(self, image: np.ndarray, provided: Any = None) -> list[Face]:
        """Faces from the first backend that finds any; ``[]`` when all fail."""
        for name in self.order(image, provided):
            if name == "provided":
                faces = ProvidedBackend(provided).detect(image)
            else:
                faces = get_backend(name, **_pick(name, self.options)).detect(image)
            if faces:
                return faces
        return []


@lru_cache(maxsize=32)
def _cached_backend(name: str, items: tuple) -> LandmarkBackend:
    options = dict(items)
    if name == "dlib":
        from .dlib_backend import DlibBackend

        return DlibBackend(**options)
    if name == "aligned":
        from .dlib_backend import AlignedBackend

        return AlignedBackend(**options)
    if name == "mediapipe":
        from .mediapipe_backend import MediaPipeBackend

        return MediaPipeBackend(**options)
    return AutoBackend(**options)


def get_backend(name: str, **options: Any) -> LandmarkBackend:
    """Return the backend called ``name`` configured with ``options`` (cached per process).

    Args:
        name: one of :data:`BACKENDS`.
        **options: dlib: ``upsample`` (int, 1), ``cnn`` (bool, False), ``max_side`` (int or
            None); aligned: ``inset`` (float, 0.0), ``min_side`` (int, 96), ``refine`` (int, 1),
            ``one_pass_band`` (``(0.33, 0.43)`` or ``"lo-hi"``; ``"none"`` = always refine);
            mediapipe: ``max_faces`` (int, 16), ``min_confidence`` (float, 0.5), ``min_face``
            (int, 40 pixels); provided:
            ``provided`` (array or path, required), ``source`` (str); auto: any of the dlib,
            aligned and mediapipe options plus ``aligned_fallback`` (bool, True).

    Raises:
        ValueError: unknown backend or option.
        LandmarkBackendError: the backend's package or model file is missing.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown landmark backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    _check_options(name, options)
    if name == "provided":  # per-image data: nothing to cache
        if options.get("provided") is None:
            raise ValueError("landmark backend 'provided' needs provided=<array, .csv or .json path>")
        return ProvidedBackend(options["provided"], options.get("source"))
    return _cached_backend(name, tuple(sorted(options.items())))


def detect(image: np.ndarray, backend: str = "auto", *, provided: Any = None,
           all_faces: bool = False, name: Optional[str] = None, **options: Any) -> list[Face]:
    """Find faces and their 68 landmarks in one image.

    Args:
        image: ``(H, W, 3) uint8 RGB``.
        backend: one of :data:`BACKENDS`.
        provided: dataset landmarks (``(68, 2)`` array, or a ``.csv``/``.json`` path); used by
            ``provided`` and tried first by ``auto``.
        all_faces: return every face (largest first) instead of only the largest.
        name: how to call the image in messages (usually its path or sample id).
        **options: backend options, see :func:`get_backend`.

    Returns:
        A non-empty list of :class:`~occlusion_synth.types.Face`, largest first.

    Raises:
        NoFaceError: no backend found a face (the message names the image and backends tried).
        LandmarkBackendError: a backend cannot run (missing package/model).
        DatasetFormatError: ``provided`` landmarks are malformed.
        ValueError: bad image array, backend or option.
    """
    label = name or "image"
    image = check_image(image, name)
    if backend == "provided":
        faces = get_backend("provided", provided=provided, source=name, **options).detect(image)
        tried = ["provided"]
    elif backend == "auto":
        auto = get_backend("auto", **options)
        tried = auto.order(image, provided)
        faces = auto.detect(image, provided=provided)
    else:
        if provided is not None:
            raise ValueError(f"provided= landmarks are only used by backends 'provided' and "
                             f"'auto', not {backend!r}")
        faces = get_backend(backend, **options).detect(image)
        tried = [backend]
    if not faces:
        raise NoFaceError(f"{label}: no face found (landmark backends tried: {', '.join(tried)})")
    return faces if all_faces else faces[:1]


# re-exported for ``except`` clauses next to detect()
__all__ += ["NoFaceError", "OcclusionSynthError"]
