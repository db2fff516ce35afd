"""Per-epoch validation of a fine-tuning run, and its optional TensorBoard log.

:func:`validate` scores everything a reader needs to judge a run on the **validation** split (never
the test split, unless the user names it): the student on the occluded images (the selection
criterion), the student and the frozen teacher on the clean images of the same pairs (the quality
of the guidance), and the decoder's reconstruction PSNR. :class:`TensorBoardLog` writes the same
figures plus a picture of the reconstructions next to ``summary.csv`` (``--log tensorboard``).
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..data.transforms import denormalize
from ..distributed import reduce_sums
from .loops import to_device


def psnr(rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of ``[0, 1]`` images.

    Args:
        rec, target: ``(B, 3, S, S)`` float in [0, 1].

    Returns:
        ``(B,)`` float: ``10 log10(1 / MSE)`` (MSE floored at 1e-10, i.e. at most 100 dB).
    """
    mse = ((rec.float() - target.float()) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


@torch.no_grad()
def validate(student: nn.Module, loader: Iterable, device: torch.device, teacher: nn.Module | None = None,
             decoder: nn.Module | None = None, autocast: Callable = contextlib.nullcontext,
             channels_last: bool = False, num_examples: int = 8) -> tuple[dict[str, float], dict | None]:
    """One pass over the validation loader, all nets in eval mode (restored afterwards).

    Returns:
        ``(metrics, examples)``. ``metrics``: ``val_acc`` (student, occluded: the selection
        criterion), ``val_acc_clean`` (student, clean), ``val_acc_teacher`` (teacher, clean; when a
        teacher is given), ``val_psnr`` (mean per-image PSNR in dB of the decoder's reconstruction
        against the clean image; when a decoder is given). Fractions in [0, 1]; NaN for an empty
        loader; reduced over DDP processes. ``examples``: the first ``num_examples`` ``clean``,
        ``occluded``, ``reconstructed`` images as ``(N, 3, S, S)`` float [0, 1] CPU tensors (None
        without a decoder).
    """
    nets = [m for m in (student, teacher, decoder) if m is not None]
    modes = [m.training for m in nets]
    for m in nets:
        m.eval()
    sums = {"c_occ": 0.0, "c_clean": 0.0, "c_teacher": 0.0, "psnr": 0.0, "n": 0.0}
    ex: dict[str, list[torch.Tensor]] = {"clean": [], "occluded": [], "reconstructed": []}
    try:
        for batch in loader:
            batch = to_device(batch, device, channels_last)
            y = batch["label"]
            with autocast():
                logits_o, h_o = student(batch["occluded"])
                logits_s_clean, _ = student(batch["clean"])
                logits_t = teacher(batch["clean"])[0] if teacher is not None else None
                rec = decoder(h_o).float() if decoder is not None else None
            sums["n"] += int(y.shape[0])
            sums["c_occ"] += int((logits_o.argmax(1) == y).sum())
            sums["c_clean"] += int((logits_s_clean.argmax(1) == y).sum())
            if logits_t is not None:
                sums["c_teacher"] += int((logits_t.argmax(1) == y).sum())
            if rec is not None:
                target = denormalize(batch["clean"].float())
                sums["psnr"] += float(psnr(rec, target).sum())
                take = num_examples - sum(len(t) for t in ex["clean"])
                if take > 0:
                    ex["clean"].append(target[:take].cpu())
                    ex["occluded"].append(denormalize(batch["occluded"][:take].float()).clamp(0, 1).cpu())
                    ex["reconstructed"].append(rec[:take].cpu())
    finally:
        for m, mode in zip(nets, modes):
            m.train(mode)
    sums = reduce_sums(sums, device)
    n = sums["n"]
    div = (lambda k: sums[k] / n) if n else (lambda k: math.nan)
    metrics = {"val_acc": div("c_occ"), "val_acc_clean": div("c_clean")}
    if teacher is not None:
        metrics["val_acc_teacher"] = div("c_teacher")
    if decoder is not None:
        metrics["val_psnr"] = div("psnr")
    examples = {k: torch.cat(v) for k, v in ex.items()} if decoder is not None and ex["clean"] else None
    return metrics, examples


class TensorBoardLog:
    """``OUT/tensorboard/`` event files: every numeric column of a summary row as a scalar (tag
    ``phase/column``, step = epoch) and, when given, a grid of clean / occluded / reconstructed
    validation images. Open with ``tensorboard --logdir OUT``.
    """

    def __init__(self, out: str | Path, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(out) / "tensorboard"
        # purge_step drops events past a resumed epoch, so a resumed run has no duplicate points
        self.writer = SummaryWriter(str(self.dir), purge_step=purge_step)

    def log(self, phase: str, row: dict[str, Any], examples: dict | None = None) -> None:
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                if value == value:  # NaN would break the plot's scale
                    self.writer.add_scalar(f"{phase}/{key}", float(value), step)
        if examples:
            grid = torch.cat([examples["clean"], examples["occluded"], examples["reconstructed"]])
            from torchvision.utils import make_grid

            picture = make_grid(grid.clamp(0, 1), nrow=len(examples["clean"]), padding=1)
            self.writer.add_image(f"{phase}/reconstructions (clean | occluded | decoded)", picture, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
