"""Expression prediction on image files: every face, framed exactly as the training pairs were.

By default each face in an image is found (``occlusion_synth.landmarks.detect``, all faces) and
cut out with :func:`occlusion_synth.functional.crop.face_crop`, the one crop kernel that
``occsynth generate --crop face`` uses to make training pairs, so the model sees at inference the
framing it was trained on. ``crop="none"`` takes the whole image as one aligned face (for inputs
that already are face crops, like RAF-DB's aligned images).

A broken, missing or faceless input is a :class:`Failure` (the others go on); files in a folder
that are not images by their extension are listed in ``skipped``.

Example::

    from fer_pi.predict import predict_paths

    result = predict_paths("runs/full/best.pt", ["photos/"])
    for p in result.predictions:
        print(p.path, p.face, p.box, p.label_name, round(p.probability, 3))
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from occlusion_synth.functional.crop import DEFAULT_MARGIN, face_crop

CropMode = Literal["face", "none"]
CROP_MODES = ("face", "none")


@dataclass
class Prediction:
    """One face of one input.

    Attributes:
        path: the input file.
        face: face index in the image (0 = largest); ``None`` with ``crop="none"``.
        box: the detected face box ``(x0, y0, x1, y1)`` in image pixels (ints); with
            ``crop="none"`` the whole image ``(0, 0, W, H)``.
        crop: the square crop window ``(x0, y0, x1, y1)`` in image pixels (may extend past the
            image, padded black), ``None`` with ``crop="none"``.
        label: predicted class index. label_name: its name. probability: its softmax probability.
        probabilities: ``{class name: probability}`` for all classes.
    """

    path: str
    face: int | None
    box: tuple[int, int, int, int]
    crop: tuple[int, int, int, int] | None
    label: int
    label_name: str
    probability: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = asdict(self)
        out["box"] = list(self.box)
        out["crop"] = None if self.crop is None else list(self.crop)
        return out


@dataclass
class Failure:
    """An input that gave no prediction (``reason`` is one line)."""

    path: str
    reason: str


@dataclass
class PredictResult:
    """Everything :func:`predict_paths` found: predictions, failed inputs, skipped folder entries."""

    predictions: list[Prediction] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"predictions": [p.to_dict() for p in self.predictions],
                "failures": [asdict(f) for f in self.failures], "skipped": [asdict(s) for s in self.skipped]}


def image_extensions() -> frozenset[str]:
    """The file extensions a folder's images are found by (the readers' and ``occsynth preview``'s)."""
    from occlusion_synth.io import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def expand_inputs(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Failure], list[Failure]]:
    """Files and folders -> ``(image files, failures, skipped)``.

    A folder contributes its image files (recursively, sorted); its other files are ``skipped``
    with a reason. A path given explicitly is always tried (any extension); a missing one or one
    that is not a regular file (FIFO, device) is a failure.
    """
    exts = image_extensions()
    files: list[Path] = []
    failures: list[Failure] = []
    skipped: list[Failure] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = 0
            for f in sorted(p.rglob("*")):
                if f.is_dir():
                    continue
                if not f.is_file():
                    skipped.append(Failure(str(f), "not a regular file"))
                elif f.suffix.lower() in exts:
                    files.append(f)
                    found += 1
                else:
                    skipped.append(Failure(str(f), f"not an image extension ({', '.join(sorted(exts))})"))
            if not found:
                failures.append(Failure(str(p), "folder holds no image files"))
        elif not p.exists():
            failures.append(Failure(str(p), "file not found"))
        elif not p.is_file():
            failures.append(Failure(str(p), "not a regular file"))
        else:
            files.append(p)
    return files, failures, skipped


class Predictor:
    """A loaded checkpoint that classifies the faces of images.

    Args:
        checkpoint: fer_pi checkpoint (``best.pt``, ``last.pt``, ``student.pt`` ...).
        which: ``"student"`` (occluded-face network) or ``"teacher"``.
        device: ``auto``, ``cpu``, ``cuda`` ...
        crop: ``"face"`` (every face, training crop) or ``"none"`` (whole image as one face).
        backend: landmark backend for ``crop="face"`` (``auto``, ``dlib``, ``mediapipe``).
        margin: crop margin; None: :data:`occlusion_synth.functional.crop.DEFAULT_MARGIN`, the one
            ``occsynth generate`` crops training pairs with.
    """

    def __init__(self, checkpoint: str | os.PathLike, which: str = "student", device: str = "auto",
                 crop: CropMode = "face", backend: str = "auto", margin: float | None = None) -> None:
        from .errors import FerPiError
        from .evaluation import class_names_for
        from .models import load_for_inference
        from .utils import resolve_device

        if crop not in CROP_MODES:
            raise FerPiError(f"--crop {crop!r}: must be one of {', '.join(CROP_MODES)}")
        self.device = resolve_device(device)
        self.model, config = load_for_inference(checkpoint, which=which, device=self.device)
        self.image_size = int(config.get("image_size", 88))
        self.names = class_names_for(self.model.num_classes)
        self.crop, self.backend = crop, backend
        self.margin = DEFAULT_MARGIN if margin is None else float(margin)

    def faces(self, image: np.ndarray, name: str) -> list[tuple[np.ndarray, tuple, tuple | None, int | None]]:
        """``[(input (S, S, 3) uint8, box, crop window, face index)]`` for one ``(H, W, 3) uint8`` image.

        Raises:
            NoFaceError: ``crop="face"`` and no face was found.
        """
        from .data.transforms import resize

        if self.crop == "none":
            h, w = image.shape[:2]
            return [(resize(image, self.image_size), (0, 0, w, h), None, None)]
        from occlusion_synth.landmarks import detect

        out = []
        for i, face in enumerate(detect(image, backend=self.backend, all_faces=True, name=name)):
            framed = face_crop(image, face.landmarks, margin=self.margin, size=self.image_size)
            box = tuple(int(round(float(v))) for v in face.box)
            out.append((resize(framed.image, self.image_size), box, framed.box.xyxy, i))
        return out

    def predict_image(self, image: np.ndarray, name: str = "image") -> list[Prediction]:
        """Predictions for every face of one ``(H, W, 3) uint8 RGB`` image (one batch)."""
        import torch

        from .data.transforms import to_tensor
        from .evaluation import _logits_of

        found = self.faces(image, name)
        x = torch.stack([to_tensor(f[0]) for f in found]).to(self.device)
        with torch.no_grad():
            probs = torch.softmax(_logits_of(self.model(x))[0].float(), dim=1).cpu()
        out = []
        for (_, box, window, index), p in zip(found, probs):
            k = int(p.argmax())
            out.append(Prediction(path=name, face=index, box=box, crop=window, label=k, label_name=self.names[k],
                                  probability=float(p[k]),
                                  probabilities={n: float(v) for n, v in zip(self.names, p.tolist())}))
        return out


def predict_paths(checkpoint: str | os.PathLike, paths: Sequence[str | os.PathLike], which: str = "student",
                  device: str = "auto", crop: CropMode = "face", backend: str = "auto",
                  margin: float | None = None) -> PredictResult:
    """Predict every face of every image in ``paths`` (files and folders); see :class:`Predictor`.

    Per-input problems (missing, not a regular file, unreadable, no face) become
    :class:`Failure` entries; a bad checkpoint raises :class:`fer_pi.errors.FerPiError`.
    """
    from occlusion_synth.io import read_image

    predictor = Predictor(checkpoint, which=which, device=device, crop=crop, backend=backend, margin=margin)
    files, failures, skipped = expand_inputs(paths)
    result = PredictResult(failures=failures, skipped=skipped)
    for f in files:
        try:
            image = read_image(f)
            result.predictions.extend(predictor.predict_image(image, str(f)))
        except MemoryError:
            result.failures.append(Failure(str(f), "image too large: out of memory"))
        except Exception as exc:  # any decode/detect problem is a property of this file
            msg = str(exc).replace(f"{f}: ", "") or type(exc).__name__
            result.failures.append(Failure(str(f), msg.splitlines()[0]))
    return result


__all__ = ["CROP_MODES", "Failure", "PredictResult", "Prediction", "Predictor", "expand_inputs", "predict_paths"]
