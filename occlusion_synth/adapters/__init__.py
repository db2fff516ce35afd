"""``Occlude`` inside torchvision v2 and albumentations pipelines.

Both adapters find the face themselves. The default is **detection** (``landmarks="auto"``:
dlib, then MediaPipe; never the aligned-crop guess), because an arbitrary image is not an
aligned crop; ``landmarks="aligned"`` is for callers who know their inputs are aligned face
crops, and a callable ``(H, W, 3) uint8 RGB -> (68, 2)`` (or ``Face``) plugs in anything else.
With no face (or no placement that fits) the sample comes back **unoccluded and flagged**
(``occluded=False``, empty mask), never pasted at a guess; ``on_failure="raise"`` raises instead.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np

from ..errors import NoFaceError, OcclusionSynthError
from ..transforms import Occlude, _as_landmarks, _as_rgb

LANDMARK_SOURCES = ("auto", "dlib", "mediapipe", "aligned")
FAILURE_MODES = ("keep", "raise")
FACE_MODES = ("largest", "all")
MASK_KEY = "occlusion_mask"
FLAG_KEY = "occluded"


class LandmarkFinder:
    """``(H, W, 3) uint8 -> list of (68, 2)`` from a callable or a backend name (a class, not a
    closure, so adapters pickle into spawned DataLoader workers)."""

    def __init__(self, landmarks: Union[str, Callable] = "auto", faces: str = "largest"):
        if not callable(landmarks) and landmarks not in LANDMARK_SOURCES:
            raise ValueError(f"landmarks must be a callable or one of {', '.join(LANDMARK_SOURCES)}; "
                             f"got {landmarks!r}")
        if faces not in FACE_MODES:
            raise ValueError(f"faces must be one of {FACE_MODES}, got {faces!r}")
        self.landmarks, self.faces = landmarks, faces

    def __call__(self, image: np.ndarray) -> list:
        """Landmarks of the face(s) to occlude, largest first; ``[]`` when there is none."""
        if callable(self.landmarks):
            found = self.landmarks(image)
            if found is None:
                return []
            many = isinstance(found, (list, tuple))
            return [_as_landmarks(f) for f in (found if many else [found])]
        from ..landmarks import detect

        options = {"aligned_fallback": False} if self.landmarks == "auto" else {}
        try:
            faces = detect(_as_rgb(image), backend=self.landmarks, all_faces=self.faces == "all", **options)
        except NoFaceError:
            return []
        return [f.landmarks for f in faces]


def _occlude_array(occlude: Occlude, finder: LandmarkFinder, arr: np.ndarray, seed: int, on_failure: str):
    """``(image, mask, occluded)`` for one ``(H, W, 3) uint8`` array."""
    empty = np.zeros(arr.shape[:2], np.uint8)  # arr: (H, W, 3) RGB or (H, W) / (H, W, 1) grey
    try:
        faces = finder(arr)
        if not faces:
            if on_failure == "raise":
                raise NoFaceError("no face found in the image (adapter landmarks="
                                  f"{finder.landmarks if isinstance(finder.landmarks, str) else 'callable'})")
            return arr, empty, False
        res = occlude(arr, faces=faces, rng=np.random.default_rng(seed))
        if res["occluded"] == 0 and on_failure == "raise":
            raise OcclusionSynthError("a face was found but no occluder placement fits it")
        return res["image"], res["mask"], res["occluded"] > 0
    except OcclusionSynthError:
        if on_failure == "raise":
            raise
        return arr, empty, False


def albumentations_transform(occlude: Occlude, landmarks: Union[str, Callable] = "auto",
                             faces: str = "largest", p: float = 1.0, on_failure: str = "keep"):
    """``Occlude`` as an albumentations transform (albumentations 2.x).

    The draw comes from the transform's own random state, so ``A.Compose([...], seed=N)``
    reproduces it. The result dict gains ``"occlusion_mask"`` (``(H, W) uint8`` 0/255) and
    ``"occluded"`` (bool); ``mask``/``masks`` targets pass through unchanged (same size).
    Declare ``additional_targets={"occlusion_mask": "mask"}`` in the Compose so that geometric
    transforms placed after this one move the occlusion mask with the image.
    ``p`` is drawn from the same random state; a sample not drawn is flagged like one with no face.
    """
    from .albu import OccludeAlbumentations

    return OccludeAlbumentations(occlude, landmarks=landmarks, faces=faces, p=p, on_failure=on_failure)


def __getattr__(name: str):
    if name == "OccludeTorchvision":  # imports torchvision: only on demand
        from .tv import OccludeTorchvision

        return OccludeTorchvision
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
