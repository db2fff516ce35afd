"""Joint augmentation of a (clean, occluded, mask) triple and tensor conversion.

Split as in albumentations: :meth:`JointAugment.get_params` draws every random value from a
``numpy.random.Generator`` and :meth:`JointAugment.apply` is a pure function of the params, so the
same flip / resized crop / colour change lands on the clean image, the occluded image and the mask
(colour only on the two images).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize(image: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize ``(H, W[, 3]) uint8`` to ``(size, size[, 3])`` (area when shrinking, linear when growing)."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR)
    return cv2.resize(image, (size, size), interpolation=interp)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(S, S, 3) uint8 RGB`` -> ``(3, S, S) float32`` ImageNet-normalised."""
    # np.array copies: decoded images may be read-only arrays, which torch refuses to wrap.
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def mask_to_tensor(mask: np.ndarray) -> torch.Tensor:
    """``(S, S) uint8 0/255`` -> ``(1, S, S) float32`` 0/1."""
    return torch.from_numpy((mask > 127).astype(np.float32))[None]


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised ``(..., 3, H, W)`` -> ``[0, 1]`` RGB (clamped)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(3, 1, 1)
    return (x * std + mean).clamp(0.0, 1.0)


@dataclass
class JointAugment:
    """Random resized crop, horizontal flip and colour jitter shared by a pair and its mask.

    Args:
        scale_range: crop area as a fraction of the image.
        ratio_range: crop aspect ratio (w / h).
        flip_p: probability of a horizontal flip.
        brightness_range, contrast_range, saturation_range: multiplicative factors.
    """

    scale_range: tuple[float, float] = (0.8, 1.0)
    ratio_range: tuple[float, float] = (0.9, 1.1)
    flip_p: float = 0.5
    brightness_range: tuple[float, float] = (0.8, 1.2)
    contrast_range: tuple[float, float] = (0.8, 1.2)
    saturation_range: tuple[float, float] = (0.8, 1.2)

    def get_params(self, rng: np.random.Generator, size: int) -> dict:
        """Draw crop box ``(x0, y0, w, h)``, flip and colour factors for a ``size x size`` image."""
        area = size * size * rng.uniform(*self.scale_range)
        ratio = float(np.exp(rng.uniform(np.log(self.ratio_range[0]), np.log(self.ratio_range[1]))))
        w = int(round(min(size, np.sqrt(area * ratio))))
        h = int(round(min(size, np.sqrt(area / ratio))))
        x0 = int(rng.integers(0, size - w + 1))
        y0 = int(rng.integers(0, size - h + 1))
        return dict(box=(x0, y0, w, h), flip=bool(rng.random() < self.flip_p),
                    brightness=float(rng.uniform(*self.brightness_range)),
                    contrast=float(rng.uniform(*self.contrast_range)),
                    saturation=float(rng.uniform(*self.saturation_range)))

    @staticmethod
    def apply(images: list[np.ndarray], mask: np.ndarray | None, params: dict
              ) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Apply ``params`` to ``(S, S, 3) uint8`` images and an optional ``(S, S) uint8`` mask."""
        x0, y0, w, h = params["box"]
        size = images[0].shape[0]

        def geo(a: np.ndarray, nearest: bool) -> np.ndarray:
            a = a[y0:y0 + h, x0:x0 + w]
            a = cv2.resize(a, (size, size), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
            return a[:, ::-1] if params["flip"] else a

        warped = [geo(im, False) for im in images]
        # One contrast pivot for all images (the first one's mean grey), so that pixels the
        # occluder does not touch stay identical between the clean and the occluded image.
        pivot = float((warped[0].astype(np.float32) * params["brightness"] @ _GREY).mean())
        out = [_colour(im, params, pivot) for im in warped]
        return out, (np.ascontiguousarray(geo(mask, True)) if mask is not None else None)


_GREY = np.array([0.299, 0.587, 0.114], np.float32)


def _colour(image: np.ndarray, params: dict, pivot: float) -> np.ndarray:
    x = image.astype(np.float32) * params["brightness"]
    x = (x - pivot) * params["contrast"] + pivot
    gray = (x @ _GREY)[..., None]
    x = gray + (x - gray) * params["saturation"]
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
