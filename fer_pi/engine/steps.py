"""One optimisation step of each kind, and the fine-tuning task that names the losses (timm style).

Fine-tuning a batch (Algorithm 1, lines 5-12) goes: :meth:`PrivilegedTask.forward` (student on the
occluded images with gradients, frozen teacher on the clean ones under ``no_grad``), then
:func:`discriminator_step` (K1 updates of D on the *detached* features, teacher features real,
student features fake), then :func:`student_step` (D frozen with ``requires_grad_(False)``; the task
returns the named losses, the step only weights, sums and back-propagates them).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import losses as L
from ..data.transforms import denormalize
from ..distributed import unwrap


@dataclass
class Forward:
    """The outputs of one fine-tuning forward pass.

    ``logits_o (B, K)`` and ``h_o (B, C, h, w)`` from the student on occluded images (with graph);
    ``logits_c``/``h_c`` from the frozen teacher on clean images (no graph; None when unused).
    """

    logits_o: torch.Tensor
    h_o: torch.Tensor
    logits_c: torch.Tensor | None = None
    h_c: torch.Tensor | None = None


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad_(False)``: a frozen module (BN statistics included)."""
    module.eval()
    module.requires_grad_(False)
    return module


@contextlib.contextmanager
def batch_statistics(module: nn.Module):
    """Inside the block, the BatchNorm layers of ``module`` normalise with the batch's statistics
    (as in train mode) but leave their running statistics and counters untouched."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in bns]
    for m in bns:
        m.train(True)
        m.track_running_stats = False  # forward then passes no running buffers: nothing is updated
    try:
        yield module
    finally:
        for m, (training, track) in zip(bns, saved):
            m.train(training)
            m.track_running_stats = track


class PrivilegedTask:
    """The fine-tuning objective (Eq. 8) around a frozen teacher.

    Args:
        student: the occluded-face network (maybe DDP-wrapped), returns ``(logits, features)``.
        teacher: the clean-face network; frozen here (eval, no grad). May be None when no enabled
            term needs it (``resnet`` and ``rec`` presets).
        discriminator: D (maybe DDP-wrapped) when ``use_adv``, else None.
        decoder: the reconstruction decoder (maybe DDP-wrapped) when ``use_rec``, else None.
        config: a :class:`fer_pi.config.TrainConfig` (switches, lambdas, ``sim_on``).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module | None, discriminator: nn.Module | None,
                 decoder: nn.Module | None, config: Any):
        self.student, self.teacher = student, teacher
        self.discriminator, self.decoder, self.config = discriminator, decoder, config
        if self.needs_teacher and teacher is None:
            raise ValueError("the enabled losses (sim/ineq/adv) need a teacher")
        if config.use_adv and discriminator is None:
            raise ValueError("use_adv needs a discriminator")
        if config.use_rec and decoder is None:
            raise ValueError("use_rec needs a decoder")
        if teacher is not None:
            freeze(teacher)

    @property
    def needs_teacher(self) -> bool:
        c = self.config
        return bool(c.use_sim or c.use_ineq or c.use_adv)

    def weights(self) -> dict[str, float]:
        """The lambda of each enabled student loss term (Eq. 8)."""
        c = self.config
        w = {"loss_cls": 1.0}
        if c.use_sim:
            w["loss_sim"] = c.lambda_sim
        if c.use_ineq:
            w["loss_ineq"] = c.lambda_ineq
        if c.use_adv:
            w["loss_adv"] = c.lambda_adv
        if c.use_rec:
            w["loss_rec"] = c.lambda_rec
        return w

    def train(self, mode: bool = True) -> None:
        """Train/eval mode for the trainable nets; the teacher always stays in eval mode."""
        for m in (self.student, self.discriminator, self.decoder):
            if m is not None:
                m.train(mode)
        if self.teacher is not None:
            self.teacher.eval()

    def forward(self, batch: dict[str, torch.Tensor]) -> Forward:
        """Student on ``batch["occluded"]`` (graph kept), teacher on ``batch["clean"]`` (no grad)."""
        logits_o, h_o = self.student(batch["occluded"])
        out = Forward(logits_o, h_o)
        if self.needs_teacher:
            # teacher_bn="batch": the teacher normalises with batch statistics like the train-mode
            # student, so BN mode is no cue for D (docs/training.md, "BatchNorm asymmetry")
            batch_bn = getattr(self.config, "teacher_bn", "eval") == "batch" and self.student.training
            with torch.no_grad(), (batch_statistics(self.teacher) if batch_bn else contextlib.nullcontext()):
                out.logits_c, out.h_c = self.teacher(batch["clean"])
        return out

    def disc_losses(self, fw: Forward) -> dict[str, torch.Tensor]:
        """Eq. 5 on teacher features (real) and detached student features (fake).

        Real and fake go through D in one call (D has no batch statistics, so this equals two
        calls) because a DDP-wrapped module must run forward once per backward.
        """
        h = torch.cat([fw.h_c, fw.h_o.detach()])
        d = self.discriminator(h)
        n = fw.h_c.shape[0]
        return {"loss_disc": L.loss_disc(d[:n], d[n:])}

    def student_losses(self, fw: Forward, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The enabled terms of Eq. 8, unweighted, keyed ``loss_cls``, ``loss_sim``, ``loss_ineq``,
        ``loss_adv``, ``loss_rec``. D must be frozen by the caller (see :func:`student_step`)."""
        c, y = self.config, batch["label"]
        out = {"loss_cls": L.loss_cls(fw.logits_o, y)}
        if c.use_sim:
            out["loss_sim"] = L.loss_sim(fw.logits_o, fw.logits_c, on=c.sim_on)
        if c.use_ineq:
            out["loss_ineq"] = L.loss_ineq(fw.logits_o, fw.logits_c, y)
        if c.use_adv:
            # The unwrapped D: it is frozen here, and a DDP wrapper would expect its gradients.
            out["loss_adv"] = L.loss_adv(unwrap(self.discriminator)(fw.h_o))
        if c.use_rec:
            out["loss_rec"] = L.loss_rec(self.decoder(fw.h_o), denormalize(batch["clean"].float()))
        return out


def _backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def discriminator_step(task: PrivilegedTask, fw: Forward, optimizer: torch.optim.Optimizer,
                       scaler: torch.amp.GradScaler | None = None, k1: int = 1,
                       autocast: Any = contextlib.nullcontext) -> dict[str, float]:
    """K1 updates of D (Algorithm 1, lines 5-9) on this batch's detached features.

    Algorithm 1 samples a fresh batch per D update; here the K1 updates reuse the current batch's
    features so that an epoch is one pass of student steps for every preset (fair comparisons).
    Only D's optimiser steps; the student and teacher cannot change (their features are detached).
    """
    unwrap(task.discriminator).requires_grad_(True)
    for _ in range(k1):
        with autocast():
            losses = task.disc_losses(fw)
        _backward_step(losses["loss_disc"], optimizer, scaler)
    return {k: float(v.detach()) for k, v in losses.items()}


def student_step(task: PrivilegedTask, fw: Forward, batch: dict[str, torch.Tensor],
                 optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None,
                 autocast: Any = contextlib.nullcontext) -> dict[str, float]:
    """One update of the student (and decoder) on Eq. 8 (Algorithm 1, line 12), D frozen.

    Returns:
        each enabled loss (unweighted) and ``loss_total`` (the weighted sum), as floats.
    """
    disc = unwrap(task.discriminator) if task.discriminator is not None else None
    if disc is not None:
        disc.requires_grad_(False)
    try:
        with autocast():
            losses = task.student_losses(fw, batch)
        weights = task.weights()
        total = sum(weights[k] * v for k, v in losses.items())
        _backward_step(total, optimizer, scaler)
    finally:
        if disc is not None:
            disc.requires_grad_(True)
    out = {k: float(v.detach()) for k, v in losses.items()}
    out["loss_total"] = float(total.detach())
    return out


def pretrain_step(student: nn.Module, teacher: nn.Module, batch: dict[str, torch.Tensor],
                  opt_student: torch.optim.Optimizer, opt_teacher: torch.optim.Optimizer,
                  scalers: tuple[Any, Any] = (None, None),
                  autocast: Any = contextlib.nullcontext) -> dict[str, float]:
    """Algorithm 1 lines 1-2: cross-entropy for the student on occluded images and the teacher
    on clean images, each with its own optimiser (independent networks, shared batches).

    Returns:
        ``loss_cls`` (student), ``loss_cls_teacher``, and the batch's correct counts
        ``correct`` / ``correct_teacher``.
    """
    y = batch["label"]
    with autocast():
        logits_o, _ = student(batch["occluded"])
        loss_s = L.loss_cls(logits_o, y)
    _backward_step(loss_s, opt_student, scalers[0])
    with autocast():
        logits_c, _ = teacher(batch["clean"])
        loss_t = L.loss_cls(logits_c, y)
    _backward_step(loss_t, opt_teacher, scalers[1])
    return {"loss_cls": float(loss_s.detach()), "loss_cls_teacher": float(loss_t.detach()),
            "correct": float((logits_o.argmax(1) == y).sum()),
            "correct_teacher": float((logits_c.argmax(1) == y).sum())}
