"""The ``mediapipe`` backend: full-range face detection, then the face mesh on each face's crop.

Two MediaPipe graphs, both shipped inside the ``mediapipe`` wheel (nothing is downloaded):

1. **Detection**: ``FaceDetection(model_selection=1)``, the full-range model (faces up to about
   5 m from the camera). It sees its input at 192x192, so on large or wide images small faces
   shrink to a few pixels; it therefore also runs on overlapping square tiles, down to tiles of
   :data:`TILE_FACES` times ``min_face`` pixels. The short-range model (``model_selection=0``)
   also runs once on the whole image for close-up faces that fill the frame. Boxes are merged
   by non-maximum suppression (:func:`detect_boxes`).
2. **Landmarks**: for every box, a square crop :data:`CROP_CONTEXT` times the box side, resized
   to :data:`CROP_SIZE` pixels, goes through ``FaceMesh`` in static-image mode (its own
   short-range detector finds the now large face reliably, grayscale included); the mesh face
   nearest the crop centre is kept and its 468 points are mapped back to the image
   (:func:`face_meshes`). :data:`~occlusion_synth.landmarks.schemes.MEDIAPIPE_TO_68` picks one
   vertex per iBUG point.

Grayscale input (``(H, W)``, ``(H, W, 1)`` or three equal channels) is handled as three equal
channels (:func:`~occlusion_synth.landmarks.base.check_image`).

MediaPipe and TensorFlow Lite write log lines straight to the process's stderr file descriptor
from C++ threads (``GLOG_minloglevel`` and similar variables do not stop them in mediapipe
0.10.21), so graph construction and every MediaPipe call run with file descriptor 2 redirected
to a temporary file; lines that are not MediaPipe/absl/TFLite info or warning lines are written
back to stderr (:func:`quiet_native_stderr`). Set ``OCCSYNTH_MEDIAPIPE_LOGS=1`` to see
MediaPipe's own output. MediaPipe is imported inside functions only.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np

from ..errors import LandmarkBackendError
from ..types import Face
from .base import check_image, largest_first, make_face
from .schemes import MEDIAPIPE_TO_68

_INDEX = np.asarray(MEDIAPIPE_TO_68, dtype=np.intp)
# the graphs are shared per process and their process() is not thread-safe
_LOCK = threading.Lock()

# Detection runs on the whole image and on square tiles down to TILE_FACES * min_face pixels,
# so a face of min_face pixels covers at least 1/TILE_FACES of the detector's 192 px input.
TILE_FACES = 8
TILE_OVERLAP = 0.25          # fraction of a tile shared with its neighbour
NMS_IOU = 0.3                # boxes overlapping more than this are one face
MIN_FACE = 40                # default smallest face side, in pixels (dlib HOG, upsample 1: ~40)
# Landmark crops: square, CROP_CONTEXT x the detection box side, resampled to CROP_SIZE pixels.
CROP_CONTEXT = 2.2
CROP_SIZE = 320
# a mesh face is the detected one when its centre lies within this fraction of the crop side
# from the crop centre (neighbouring faces of a group photo sit further out)
CROP_CENTRE_TOL = 0.2
LOG_ENV = "OCCSYNTH_MEDIAPIPE_LOGS"
# MediaPipe / absl / TFLite informational lines (I/W severities, TFLite INFO/WARNING, absl notice)
_LOG_LINE = re.compile(
    r"^(?:[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\]|INFO: |WARNING: )")


@dataclass(frozen=True)
class Detection:
    """One full-range detector box.

    Attributes:
        box: ``(4,) float32`` ``x0, y0, x1, y1`` in image pixels (pixel centres at integers).
        score: detector confidence in [0, 1].
    """

    box: np.ndarray
    score: float


@dataclass(frozen=True)
class MeshFace:
    """One face's 468 mesh points and its detection.

    Attributes:
        points: ``(468, 2) float32`` x, y in image pixels.
        detection: the box and score the crop was cut from.
    """

    points: np.ndarray
    detection: Detection


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Redirect file descriptor 2 to a temporary file while MediaPipe runs.

    On exit, lines that are not MediaPipe/absl/TFLite info or warning lines are written back to
    the real stderr, so errors from MediaPipe or from other threads are not lost. Does nothing
    when the environment variable ``OCCSYNTH_MEDIAPIPE_LOGS`` is ``1``.
    """
    if os.environ.get(LOG_ENV) == "1":
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor at all: nothing can reach a terminal
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(True)
                    if line.strip() and not _LOG_LINE.match(line)]
            if kept:
                os.write(2, "".join(kept).encode())


def _solutions():
    try:
        with quiet_native_stderr():
            from mediapipe.python.solutions import face_detection, face_mesh
    except ImportError as exc:
        raise LandmarkBackendError(
            f"the mediapipe landmark backend needs mediapipe ({exc}); "
            "install it with `pip install mediapipe==0.10.21`") from None
    return face_detection, face_mesh


def _started(graph):
    """Run ``graph`` once on a blank image, quietly: MediaPipe opens its calculators (and logs)
    on its own threads after the constructor returns, and a first ``process`` waits for that."""
    with _LOCK, quiet_native_stderr():
        graph.process(np.zeros((64, 64, 3), np.uint8))
    return graph


@lru_cache(maxsize=None)
def _detector(min_confidence: float, model: int = 1):
    """``model`` 1: full-range detector (192 px input); 0: short-range (128 px, close-up faces)."""
    face_detection, _ = _solutions()
    with quiet_native_stderr():
        graph = face_detection.FaceDetection(model_selection=model, min_detection_confidence=min_confidence)
    return _started(graph)


@lru_cache(maxsize=None)
def _face_mesh(max_faces: int, min_confidence: float):
    _, face_mesh = _solutions()
    with quiet_native_stderr():
        graph = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                                   refine_landmarks=False, min_detection_confidence=min_confidence)
    return _started(graph)


def _tile_sides(h: int, w: int, min_face: int) -> list[int]:
    """Tile sides of the detection pyramid: the whole image, then halving down to the smallest."""
    smallest = max(64, TILE_FACES * int(min_face))
    sides = [max(h, w)]
    side = min(h, w) if max(h, w) >= 1.5 * min(h, w) else max(h, w) // 2
    while sides[-1] > smallest:
        sides.append(max(side, smallest))
        if side <= 1.5 * smallest:
            break
        side //= 2
    return sides


def _starts(length: int, tile: int) -> list[int]:
    if tile >= length:
        return [0]
    stride = max(1, int(tile * (1.0 - TILE_OVERLAP)))
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _nms(dets: list[Detection], iou: float = NMS_IOU) -> list[Detection]:
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(_iou(d.box, k.box) <= iou for k in kept):
            kept.append(d)
    return kept


def detect_boxes(image: np.ndarray, min_confidence: float = 0.5, min_face: int = MIN_FACE) -> list[Detection]:
    """MediaPipe face boxes: the full-range model over the whole image and a pyramid of square
    tiles, plus the short-range model on the whole image (it finds close-up faces that fill the
    frame, e.g. aligned crops, which the full-range model can miss).

    Args:
        image: ``(H, W, 3) uint8`` RGB (grayscale as three equal channels).
        min_confidence: detector score threshold.
        min_face: smallest face side to look for, in pixels (sets the smallest tile).

    Returns:
        Boxes after non-maximum suppression, highest score first.
    """
    image = check_image(image)
    h, w = image.shape[:2]
    full, short = _detector(float(min_confidence), 1), _detector(float(min_confidence), 0)
    found: list[Detection] = []

    def run(detector, x: int, y: int, tile: np.ndarray) -> None:
        th, tw = tile.shape[:2]
        for det in detector.process(tile).detections or []:
            rb = det.location_data.relative_bounding_box
            box = np.array([x + rb.xmin * tw - 0.5, y + rb.ymin * th - 0.5,
                            x + (rb.xmin + rb.width) * tw - 0.5, y + (rb.ymin + rb.height) * th - 0.5],
                           np.float32)
            if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
                found.append(Detection(box, float(det.score[0])))

    with _LOCK, quiet_native_stderr():
        run(short, 0, 0, image)
        for side in _tile_sides(h, w, min_face):
            th, tw = min(side, h), min(side, w)
            for y in _starts(h, th):
                for x in _starts(w, tw):
                    run(full, x, y, image if (th, tw) == (h, w) else
                        np.ascontiguousarray(image[y:y + th, x:x + tw]))
    return _nms(found)


def _crop(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Square crop around ``box`` resampled to CROP_SIZE; returns crop, left, top, side (edge coords)."""
    import cv2

    cx, cy = (box[0] + box[2]) / 2 + 0.5, (box[1] + box[3]) / 2 + 0.5   # edge coordinates
    side = float(CROP_CONTEXT * max(box[2] - box[0], box[3] - box[1]))
    left, top = cx - side / 2, cy - side / 2
    s = CROP_SIZE / side
    # crop pixel centre u <- image pixel centre x: u + 0.5 = s * (x + 0.5 - left)
    matrix = np.array([[s, 0, s * (0.5 - left) - 0.5], [0, s, s * (0.5 - top) - 0.5]], np.float64)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return np.ascontiguousarray(crop), left, top, side


def mesh_points(image: np.ndarray, max_faces: int = 1, min_confidence: float = 0.5) -> list[np.ndarray]:
    """Face mesh on the whole image (no separate detection): ``(468, 2) float32`` pixels per face.

    This is MediaPipe's plain static-image face mesh, which misses small, far and many grayscale
    faces; :func:`face_meshes` (detection first) is what the backend uses. MediaPipe reports x, y
    normalised to [0, 1] across the image *edges*; multiplying by the size and subtracting half a
    pixel gives the pixel-centre convention dlib and this library use.
    """
    image = check_image(image)
    h, w = image.shape[:2]
    mesh = _face_mesh(int(max_faces), float(min_confidence))
    with _LOCK, quiet_native_stderr():
        result = mesh.process(image)
    out = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([(p.x, p.y) for p in face.landmark[:468]], dtype=np.float32)
        out.append(pts * np.array([w, h], np.float32) - 0.5)
    return out


def face_meshes(image: np.ndarray, max_faces: int = 16, min_confidence: float = 0.5,
                min_face: int = MIN_FACE) -> list[MeshFace]:
    """Every face: full-range detection (:func:`detect_boxes`), then the mesh on each face's crop.

    Returns:
        At most ``max_faces`` faces, highest detection score first, each with ``(468, 2)``
        float32 image-pixel points. A detection whose crop yields no mesh face near its centre
        is dropped (the mesh's own detector acts as a second check).
    """
    image = check_image(image)
    mesh = _face_mesh(3, 0.5)  # up to 3 faces per crop: neighbours of a group photo may enter it
    out: list[MeshFace] = []
    for det in detect_boxes(image, min_confidence, min_face):
        crop, left, top, side = _crop(image, det.box)
        with _LOCK, quiet_native_stderr():
            result = mesh.process(crop)
        best, best_dist = None, CROP_CENTRE_TOL
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x, p.y) for p in face.landmark[:468]], dtype=np.float32)
            dist = float(np.linalg.norm(pts.mean(axis=0) - 0.5))
            if dist < best_dist:
                best, best_dist = pts, dist
        if best is None:
            continue
        points = (best * np.float32(side) + np.array([left, top], np.float32) - 0.5).astype(np.float32)
        box = np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()])
        if any(_iou(box, np.array([o.points[:, 0].min(), o.points[:, 1].min(), o.points[:, 0].max(),
                                   o.points[:, 1].max()])) > 0.5 for o in out):
            continue  # two detections of one face
        out.append(MeshFace(points, det))
        if len(out) >= max_faces:
            break
    return out


class MediaPipeBackend:
    """MediaPipe full-range face detection + face mesh per face -> 68 points.

    ``Face.score`` is the full-range detector's confidence (0-1); ``Face.box`` is the detector's
    box (a square-ish box from brows to chin, comparable to dlib's).

    Args:
        max_faces: most faces returned per image (the largest ones).
        min_confidence: score threshold of the full-range detector.
        min_face: smallest face side searched for, in pixels; smaller values tile the image
            more finely (slower on large photos).
    """

    name = "mediapipe"

    def __init__(self, max_faces: int = 16, min_confidence: float = 0.5, min_face: int = MIN_FACE):
        if int(max_faces) < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if int(min_face) < 8:
            raise ValueError(f"min_face must be >= 8 pixels, got {min_face}")
        self.max_faces = int(max_faces)
        self.min_confidence = float(min_confidence)
        self.min_face = int(min_face)
        # build both graphs now so a broken install fails at construction, not mid-dataset
        _detector(self.min_confidence, 1)
        _detector(self.min_confidence, 0)
        _face_mesh(3, 0.5)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` ((H, W, 3) uint8 RGB, or (H, W) grayscale), largest first; ``[]`` if none."""
        faces = [make_face(m.points[_INDEX], m.detection.box, m.detection.score, self.name)
                 for m in face_meshes(image, 10 ** 6, self.min_confidence, self.min_face)]
        return largest_first(faces)[:self.max_faces]
