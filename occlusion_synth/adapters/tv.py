"""The torchvision v2 adapter (imports torchvision; see :mod:`occlusion_synth.adapters`)."""
from __future__ import annotations

from typing import Any, Callable, Union

import numpy as np

from ..transforms import Occlude
from . import FAILURE_MODES, FLAG_KEY, MASK_KEY, LandmarkFinder, _occlude_array


def _torchvision_base():
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise ImportError("Occlude.as_torchvision() needs torchvision (pip install torchvision)") from None
    return v2.Transform


class OccludeTorchvision(_torchvision_base()):
    """``Occlude`` as a ``torchvision.transforms.v2.Transform``.

    Works on PIL images, ``tv_tensors.Image`` and plain ``(3, H, W) uint8`` tensors, alone or
    inside a sample (tuple or dict, e.g. with a ``tv_tensors.Mask`` target, which passes through
    unchanged: occlusion moves no pixel). The random draw is seeded from torch's generator, so
    ``torch.manual_seed`` and DataLoader worker seeding control it.

    Outputs: the image in its input type. A dict sample also gets ``"occlusion_mask"`` (a
    ``tv_tensors.Mask`` ``(1, H, W) uint8``, or PIL ``L`` for PIL input) and ``"occluded"``
    (bool). For a bare image, ``return_mask=True`` returns ``(image, mask, occluded)``.

    Args:
        occlude: the :class:`~occlusion_synth.transforms.Occlude` to apply.
        landmarks: ``auto`` (detection, default), ``dlib``, ``mediapipe``, ``aligned`` (only for
            aligned face crops) or a callable.
        faces: ``largest`` (default) or ``all`` (every detected face gets its own occluder).
        return_mask: also return the mask and the flag for bare-image inputs.
        on_failure: ``keep`` (default: no face -> unoccluded, flagged) or ``raise``.
    """

    def __init__(self, occlude: Occlude, landmarks: Union[str, Callable] = "auto", faces: str = "largest",
                 return_mask: bool = False, on_failure: str = "keep"):
        super().__init__()
        if on_failure not in FAILURE_MODES:
            raise ValueError(f"on_failure must be one of {FAILURE_MODES}, got {on_failure!r}")
        self.occlude, self.find = occlude, LandmarkFinder(landmarks, faces)
        self.return_mask, self.on_failure = bool(return_mask), on_failure

    @staticmethod
    def _is_image(inpt: Any) -> bool:
        import PIL.Image
        import torch
        from torchvision import tv_tensors

        if isinstance(inpt, (PIL.Image.Image, tv_tensors.Image)):
            return True
        return type(inpt) is torch.Tensor and inpt.ndim == 3 and inpt.shape[0] == 3

    def make_params(self, flat_inputs: list) -> dict:
        import torch

        target = next((i for i in flat_inputs if self._is_image(i)), None)
        if target is None:
            raise TypeError("OccludeTorchvision found no image (PIL, tv_tensors.Image or (3, H, W) tensor)")
        if isinstance(target, torch.Tensor):
            if target.dtype != torch.uint8:
                raise ValueError(f"tensor images must be uint8 (occlude before ToDtype), got {target.dtype}")
            arr = np.ascontiguousarray(target.detach().cpu().permute(1, 2, 0).numpy())
        else:
            arr = np.asarray(target.convert("RGB"), dtype=np.uint8)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        out, mask, occluded = _occlude_array(self.occlude, self.find, arr, seed, self.on_failure)
        return {"target": target, "image": out, "mask": mask, "occluded": occluded}

    def transform(self, inpt: Any, params: dict) -> Any:
        if inpt is not params["target"]:
            return inpt
        return self._as_type(params["image"], inpt)

    @staticmethod
    def _as_type(arr: np.ndarray, like: Any):
        import torch

        if isinstance(like, torch.Tensor):
            t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
            return t if type(like) is torch.Tensor else t.as_subclass(type(like))
        from PIL import Image

        return Image.fromarray(arr)

    def _mask_out(self, mask: np.ndarray, like: Any):
        import torch

        if isinstance(like, torch.Tensor):
            from torchvision import tv_tensors

            return tv_tensors.Mask(torch.from_numpy(mask)[None])
        from PIL import Image

        return Image.fromarray(mask, mode="L")

    def forward(self, *inputs: Any) -> Any:
        from torch.utils._pytree import tree_flatten, tree_unflatten

        sample = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = tree_flatten(sample)
        self.check_inputs(flat)
        params = self.make_params(flat)
        out = tree_unflatten([self.transform(i, params) for i in flat], spec)
        mask = self._mask_out(params["mask"], params["target"])
        if isinstance(out, dict):
            return {**out, MASK_KEY: mask, FLAG_KEY: params["occluded"]}
        if self.return_mask:
            return out, mask, params["occluded"]
        return out

    def extra_repr(self) -> str:
        lm = self.find.landmarks if isinstance(self.find.landmarks, str) else "callable"
        return (f"categories={self.occlude.categories}, landmarks={lm!r}, faces={self.find.faces!r}, "
                f"on_failure={self.on_failure!r}")


