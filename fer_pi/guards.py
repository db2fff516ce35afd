"""Guards that stop a diverging run before it writes anything non-finite.

Two checks, both raising :class:`NonFiniteError` (a :class:`~fer_pi.errors.FerPiError`, so the CLI
prints one line and exits 2):

* :func:`check_losses` on every batch's loss values (called by the epoch loops): a run whose loss
  becomes NaN or infinite stops at that batch instead of training on NaN for the rest of the run;
* :func:`check_payload` on every checkpoint before it is written (called by
  :func:`fer_pi.checkpoint.save_checkpoint`): network weights and loss metrics must be finite, so no
  ``best.pt`` / ``last.pt`` / ``student.pt`` ever holds NaN or inf (the earlier, finite checkpoints
  of the run are kept as they are).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import FerPiError

#: checkpoint entries that hold network weights (state dicts)
NETWORK_KEYS = ("student", "teacher", "discriminator", "decoder")
HINT = "the run diverged; lower the learning rate (e.g. --set lr_student=...) or the loss weights"


class NonFiniteError(FerPiError):
    """A loss or a weight became NaN or infinite: the run stops, nothing non-finite is saved."""


def check_losses(values: Mapping[str, float], where: str = "training step") -> None:
    """Raise :class:`NonFiniteError` when a ``loss*`` value of one batch is NaN or infinite.

    Args:
        values: the step's results, e.g. ``{"loss_cls": 1.9, "loss_total": 2.3, "correct": 3}``;
            only keys starting with ``loss`` are checked.
        where: names the phase in the message.
    """
    for key, value in values.items():
        if key.startswith("loss") and not math.isfinite(float(value)):
            raise NonFiniteError(f"{where}: {key} is {float(value)} ({HINT}); the run stopped and no "
                                 "checkpoint was written for this epoch")


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of floating-point tensors in a state dict that hold a NaN or an infinity."""
    import torch

    bad = []
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(name)
    return bad


def check_payload(payload: Mapping[str, Any], path: str = "checkpoint") -> None:
    """Raise :class:`NonFiniteError` when a checkpoint's weights or loss metrics are not finite.

    Args:
        payload: a :mod:`fer_pi.checkpoint` dict (``student`` / ``teacher`` / ``discriminator`` /
            ``decoder`` state dicts, ``metrics``).
        path: the file about to be written (named in the message).
    """
    for key in NETWORK_KEYS:
        state = payload.get(key)
        if isinstance(state, Mapping):
            bad = nonfinite_tensors(state)
            if bad:
                more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
                raise NonFiniteError(f"{path}: not written: the {key} weights hold NaN or inf ({bad[0]}{more}; "
                                     f"{HINT})")
    metrics = payload.get("metrics")
    if isinstance(metrics, Mapping):
        try:
            check_losses({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, where=str(path))
        except NonFiniteError as exc:
            raise NonFiniteError(f"{path}: not written: {str(exc).split(': ', 1)[1]}") from None


__all__ = ["NETWORK_KEYS", "NonFiniteError", "check_losses", "check_payload", "nonfinite_tensors"]
