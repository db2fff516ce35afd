"""The ``mediapipe`` backend: MediaPipe face mesh (468 points) mapped to the iBUG-68 scheme.

The mesh runs in static-image mode (every image independent, no tracking between calls) without
iris refinement; :data:`~occlusion_synth.landmarks.schemes.MEDIAPIPE_TO_68` picks one mesh vertex
per iBUG point. MediaPipe is imported inside functions only.
"""
from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from ..errors import LandmarkBackendError
from ..types import Face
from .base import box_from_landmarks, check_image, largest_first, make_face
from .schemes import MEDIAPIPE_TO_68

_INDEX = np.asarray(MEDIAPIPE_TO_68, dtype=np.intp)
# one FaceMesh graph is shared per process and its process() is not thread-safe
_LOCK = threading.Lock()


@lru_cache(maxsize=None)
def _face_mesh(max_faces: int, min_confidence: float):
    try:
        from mediapipe.python.solutions import face_mesh
    except ImportError as exc:
        raise LandmarkBackendError(
            f"the mediapipe landmark backend needs mediapipe ({exc}); "
            "install it with `pip install mediapipe==0.10.21`") from None
    return face_mesh.FaceMesh(static_image_mode=True, max_num_faces=max_faces,
                              refine_landmarks=False, min_detection_confidence=min_confidence)


def mesh_points(image: np.ndarray, max_faces: int = 1, min_confidence: float = 0.5) -> list[np.ndarray]:
    """All 468 mesh points of each face MediaPipe finds, as ``(468, 2) float32`` pixels.

    MediaPipe reports x, y normalised to [0, 1] across the image *edges*; multiplying by the size
    and subtracting half a pixel gives the pixel-centre convention dlib and this library use.
    """
    image = check_image(image)
    h, w = image.shape[:2]
    mesh = _face_mesh(int(max_faces), float(min_confidence))
    with _LOCK:
        result = mesh.process(image)
    out = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([(p.x, p.y) for p in face.landmark[:468]], dtype=np.float32)
        out.append(pts * np.array([w, h], np.float32) - 0.5)
    return out


class MediaPipeBackend:
    """MediaPipe face mesh -> 68 points.

    The face-mesh solution API exposes no per-face confidence, so ``Face.score`` is 1.0 for every
    face it returns (faces below ``min_confidence`` are not returned at all). ``Face.box`` is the
    extent of the 68 mapped points.

    Args:
        max_faces: most faces returned per image.
        min_confidence: MediaPipe's ``min_detection_confidence``.
    """

    name = "mediapipe"

    def __init__(self, max_faces: int = 4, min_confidence: float = 0.5):
        if int(max_faces) < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if not 0.0 <= float(min_confidence) <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.max_faces = int(max_faces)
        self.min_confidence = float(min_confidence)
        _face_mesh(self.max_faces, self.min_confidence)

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` ((H, W, 3) uint8 RGB), largest first; ``[]`` when none is found."""
        faces = []
        for pts in mesh_points(image, self.max_faces, self.min_confidence):
            lm = pts[_INDEX]
            faces.append(make_face(lm, box_from_landmarks(lm), 1.0, self.name))
        return largest_first(faces)
