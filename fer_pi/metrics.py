"""Classification metrics on integer labels: accuracy, confusion, per-class and grouped accuracy.

Plain numpy, no torch: every function takes 1-D integer arrays (or lists) of true and predicted
labels. Accuracies are fractions in ``[0, 1]``; reports multiply by 100. A group or class with no
sample has accuracy ``nan`` (never 0, which would read as "always wrong").
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

# Coverage = fraction of the face occluded (manifest column ``occluded_fraction``). Bins are
# half-open [lo, hi); the last bin is closed so that 1.0 lands in it.
COVERAGE_EDGES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0)
UNKNOWN_BIN = "unknown"


def _as_int_array(values: Iterable[int], name: str) -> np.ndarray:
    arr = np.asarray(list(values) if not hasattr(values, "__array__") else values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of ``y_pred == y_true``; ``nan`` for empty input.

    Args:
        y_true, y_pred: (N,) integer labels.
    """
    t = _as_int_array(y_true, "y_true")
    p = _as_int_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    return float((t == p).mean()) if t.size else math.nan


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts ``cm[true, pred]``.

    Args:
        y_true, y_pred: (N,) integer labels in ``0..num_classes-1``.
        num_classes: C.

    Returns:
        (C, C) int64 matrix; rows are true classes (as in the paper's Figure 3).
    """
    t = _as_int_array(y_true, "y_true")
    p = _as_int_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} has labels outside 0..{num_classes - 1}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix: ``cm[c, c] / cm[c].sum()``.

    Returns:
        (C,) float64, ``nan`` for a class with no true sample.
    """
    cm = np.asarray(cm)
    support = cm.sum(axis=1).astype(np.float64)
    diag = np.diag(cm).astype(np.float64)
    out = np.full(cm.shape[0], np.nan)
    np.divide(diag, support, out=out, where=support > 0)
    return out


def grouped_accuracy(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[str]) -> dict[str, dict]:
    """Accuracy within each group (e.g. occluder category).

    Args:
        y_true, y_pred: (N,) integer labels.
        groups: N group names.

    Returns:
        ``{group: {"accuracy": float, "n": int, "correct": int}}`` with groups sorted by name.
    """
    t = _as_int_array(y_true, "y_true")
    p = _as_int_array(y_pred, "y_pred")
    g = [str(x) for x in groups]
    if not (t.shape[0] == p.shape[0] == len(g)):
        raise ValueError(f"lengths differ: y_true {t.shape[0]}, y_pred {p.shape[0]}, groups {len(g)}")
    correct = t == p
    out: dict[str, dict] = {}
    for name in sorted(set(g)):
        sel = np.fromiter((x == name for x in g), dtype=bool, count=len(g))
        n = int(sel.sum())
        c = int(correct[sel].sum())
        out[name] = {"accuracy": c / n, "n": n, "correct": c}
    return out


def bin_label(lo: float, hi: float) -> str:
    """Human label of a coverage bin, e.g. ``"10-20%"``."""
    return f"{round(lo * 100)}-{round(hi * 100)}%"


def coverage_bins(fractions: Sequence[float], edges: Sequence[float] = COVERAGE_EDGES) -> list[str]:
    """Map each occluded fraction to its coverage-bin label.

    Args:
        fractions: (N,) occluded fractions in ``[0, 1]``; NaN or out-of-range values map to
            ``"unknown"``.
        edges: increasing bin edges; bins are ``[e_i, e_{i+1})``, the last one closed.

    Returns:
        N labels such as ``"0-10%"``.
    """
    e = [float(x) for x in edges]
    if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError(f"coverage edges must be increasing and at least two, got {edges!r}")
    labels = [bin_label(a, b) for a, b in zip(e, e[1:])]
    out = []
    for f in fractions:
        f = float(f)
        if not math.isfinite(f) or f < e[0] or f > e[-1]:
            out.append(UNKNOWN_BIN)
            continue
        i = int(np.searchsorted(e, f, side="right")) - 1
        out.append(labels[min(i, len(labels) - 1)])
    return out


def coverage_accuracy(y_true: Sequence[int], y_pred: Sequence[int], fractions: Sequence[float],
                      edges: Sequence[float] = COVERAGE_EDGES) -> dict[str, dict]:
    """Accuracy per coverage bin, bins in increasing order (only bins that hold samples).

    Returns:
        ``{bin_label: {"accuracy", "n", "correct"}}``.
    """
    bins = coverage_bins(fractions, edges)
    table = grouped_accuracy(y_true, y_pred, bins)
    order = [bin_label(a, b) for a, b in zip(edges, edges[1:])] + [UNKNOWN_BIN]
    return {k: table[k] for k in order if k in table}


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean and sample standard deviation (ddof=1) over seeds, ignoring NaN.

    Returns:
        ``(mean, std, n)``; std is ``nan`` when fewer than two values (no spread can be
        estimated from one seed), mean is ``nan`` when there is none.
    """
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, 0
    std = float(v.std(ddof=1)) if v.size > 1 else math.nan
    return float(v.mean()), std, int(v.size)


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str],
                          categories: Sequence[str] | None = None,
                          fractions: Sequence[float] | None = None,
                          edges: Sequence[float] = COVERAGE_EDGES) -> dict:
    """Everything at once, JSON-serialisable (NaN becomes ``None``).

    Returns:
        dict with ``n``, ``accuracy``, ``per_class`` ({name: {accuracy, n}}), ``confusion``
        (list of lists, rows true), ``class_names``, and when given ``per_category`` and
        ``per_coverage_bin`` ({group: {accuracy, n, correct}}).
    """
    c = len(class_names)
    cm = confusion_matrix(y_true, y_pred, c)
    pcs = per_class_accuracy(cm)
    out = {
        "n": int(cm.sum()),
        "accuracy": _nan_to_none(accuracy(y_true, y_pred)),
        "per_class": {name: {"accuracy": _nan_to_none(pcs[i]), "n": int(cm[i].sum())}
                      for i, name in enumerate(class_names)},
        "confusion": cm.tolist(),
        "class_names": list(class_names),
    }
    if categories is not None:
        out["per_category"] = grouped_accuracy(y_true, y_pred, categories)
    if fractions is not None:
        out["per_coverage_bin"] = coverage_accuracy(y_true, y_pred, fractions, edges)
    return out


def _nan_to_none(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x
