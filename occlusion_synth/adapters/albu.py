"""The albumentations adapter class (imports albumentations; a module-level class so that it
pickles into DataLoader workers). See :func:`occlusion_synth.adapters.albumentations_transform`."""
from __future__ import annotations

from typing import Any

import numpy as np

try:
    import albumentations as A
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("Occlude.as_albumentations() needs albumentations (pip install albumentations)") from None

from . import FAILURE_MODES, FLAG_KEY, MASK_KEY, LandmarkFinder, _occlude_array


class OccludeAlbumentations(A.ImageOnlyTransform):
    """See :func:`occlusion_synth.adapters.albumentations_transform`."""

    def __init__(self, occlude, landmarks="auto", faces: str = "largest", p: float = 1.0,
                 on_failure: str = "keep"):
        super().__init__(p=1.0)  # always runs, so every result carries the mask and the flag
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if on_failure not in FAILURE_MODES:
            raise ValueError(f"on_failure must be one of {FAILURE_MODES}, got {on_failure!r}")
        self.occlude, self.find = occlude, LandmarkFinder(landmarks, faces)
        self.occlude_p, self.on_failure = float(p), on_failure

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        image = data["image"]
        draw = self.random_generator.random()
        seed = int(self.random_generator.integers(0, 2**31 - 1))
        if draw >= self.occlude_p:
            return {"occluded_image": image, MASK_KEY: np.zeros(image.shape[:2], np.uint8), FLAG_KEY: False}
        out, mask, occluded = _occlude_array(self.occlude, self.find, np.ascontiguousarray(image), seed,
                                             self.on_failure)
        return {"occluded_image": out if occluded else image, MASK_KEY: mask, FLAG_KEY: occluded}

    def apply(self, img: np.ndarray, occluded_image: np.ndarray = None, **params: Any) -> np.ndarray:
        return occluded_image if occluded_image is not None else img

    def apply_with_params(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        res = super().apply_with_params(params, *args, **kwargs)
        res[MASK_KEY] = params[MASK_KEY]
        res[FLAG_KEY] = params[FLAG_KEY]
        return res

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ()
