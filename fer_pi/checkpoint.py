"""Atomic, ``weights_only``-loadable checkpoints.

A checkpoint is a plain dict: ``config`` (dict), ``phase`` ("pretrain" | "finetune"), ``epoch``
(epochs completed), ``student`` / ``teacher`` / ``discriminator`` / ``decoder`` (state dicts, any may
be absent), ``optim`` / ``sched`` (dicts of optimiser / scheduler states), ``scaler`` (AMP scaler
states), ``rng`` (torch/numpy/python states as tensors and lists, see :mod:`fer_pi.utils`),
``metrics`` (dict of floats), ``best`` (best validation accuracy so far).
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import FerPiError


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` with ``torch.save`` to a temporary file in the same folder, then ``os.replace``.

    A crash leaves the previous checkpoint or the complete new one, never a partial file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(payload, buf)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs).

    Raises:
        FerPiError: the file is missing, truncated/corrupt, or not a fer_pi checkpoint dict.
    """
    p = Path(path)
    if not p.is_file():
        raise FerPiError(f"{p}: checkpoint not found")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise FerPiError(f"{p}: corrupt or unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or not ({"student", "teacher"} & set(payload)):
        raise FerPiError(f"{p}: not a fer_pi checkpoint (no 'student' or 'teacher' weights)")
    return payload
