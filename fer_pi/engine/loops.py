"""Epoch loops: they move batches to the device, call the steps, and average what the steps return."""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from ..distributed import reduce_sums
from ..guards import check_losses
from .steps import PrivilegedTask, discriminator_step, pretrain_step, student_step


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool = False) -> dict[str, Any]:
    """Tensors of ``batch`` on ``device`` (images in channels_last when asked); others untouched."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.ndim == 4 and k in ("clean", "occluded"):
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def _progress(loader: Iterable, desc: str, enabled: bool):
    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not enabled)


class _Meter:
    """Sample-weighted running means, reduced over DDP processes at the end."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)

    def add(self, values: dict[str, float], n: int) -> None:
        check_losses(values)  # a NaN/inf loss stops the run here (fer_pi.guards)
        for k, v in values.items():
            self.sums[k] += v * n
            self.sums["_n_" + k] += n  # per key: D losses are not logged on every batch

    def means(self, device: torch.device) -> dict[str, float]:
        sums = reduce_sums(dict(self.sums), device)
        return {k: v / max(sums["_n_" + k], 1.0) for k, v in sums.items() if not k.startswith("_n_")}


def pretrain_epoch(student: nn.Module, teacher: nn.Module, loader: Iterable, opt_student, opt_teacher,
                   device: torch.device, scalers=(None, None), autocast: Callable = contextlib.nullcontext,
                   channels_last: bool = False, progress: bool = False, desc: str = "pretrain"
                   ) -> dict[str, float]:
    """One pass of cross-entropy pre-training of both networks.

    Returns:
        epoch means of ``loss_cls``, ``loss_cls_teacher``, and ``train_acc`` (student on occluded),
        ``train_acc_teacher`` (teacher on clean).
    """
    student.train()
    teacher.train()
    meter = _Meter()
    bar = _progress(loader, desc, progress)
    for batch in bar:
        batch = to_device(batch, device, channels_last)
        n = int(batch["label"].shape[0])
        out = pretrain_step(student, teacher, batch, opt_student, opt_teacher, scalers, autocast)
        out["train_acc"] = out.pop("correct") / n
        out["train_acc_teacher"] = out.pop("correct_teacher") / n
        meter.add(out, n)
        bar.set_postfix(loss=f"{out['loss_cls']:.3f}", acc=f"{out['train_acc']:.2f}")
    return meter.means(device)


def finetune_epoch(task: PrivilegedTask, loader: Iterable, opt_student, opt_disc, device: torch.device,
                   k1: int = 1, k2: int = 1, scalers=(None, None),
                   autocast: Callable = contextlib.nullcontext, channels_last: bool = False,
                   progress: bool = False, desc: str = "finetune") -> dict[str, float]:
    """One pass of Algorithm 1: before every K2-th student step, K1 discriminator steps.

    Every batch drives one student step; D steps (when ``use_adv``) reuse the current batch's
    detached features.

    Returns:
        epoch means of each loss the steps return, ``loss_total`` and ``train_acc``.
    """
    task.train(True)
    meter = _Meter()
    bar = _progress(loader, desc, progress)
    for i, batch in enumerate(bar):
        batch = to_device(batch, device, channels_last)
        n = int(batch["label"].shape[0])
        with autocast():
            fw = task.forward(batch)
        out: dict[str, float] = {}
        if task.config.use_adv and i % k2 == 0:
            out.update(discriminator_step(task, fw, opt_disc, scalers[1], k1, autocast))
        out.update(student_step(task, fw, batch, opt_student, scalers[0], autocast))
        out["train_acc"] = float((fw.logits_o.detach().argmax(1) == batch["label"]).sum()) / n
        meter.add(out, n)
        bar.set_postfix(loss=f"{out['loss_total']:.3f}", acc=f"{out['train_acc']:.2f}")
    return meter.means(device)


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable, device: torch.device, key: str = "occluded",
             autocast: Callable = contextlib.nullcontext, channels_last: bool = False) -> float:
    """Top-1 accuracy of ``model`` on ``batch[key]`` images (``"occluded"`` or ``"clean"``), over all
    DDP processes (each sees its DistributedSampler shard). NaN for an empty loader."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for batch in loader:
        batch = to_device(batch, device, channels_last)
        with autocast():
            logits, _ = model(batch[key])
        correct += int((logits.argmax(1) == batch["label"]).sum())
        total += int(batch["label"].shape[0])
    model.train(was_training)
    sums = reduce_sums({"c": correct, "t": total}, device)
    return sums["c"] / sums["t"] if sums["t"] else float("nan")
