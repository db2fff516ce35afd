"""Figures for runs and reports: training curves, confusion matrix, reconstructions, robustness bars.

matplotlib is imported lazily with the non-interactive Agg backend so that importing this module is
cheap and works on a headless machine. Every function writes one PNG atomically (temp + os.replace)
and returns its path.
"""
from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_png: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` to ``out_png`` atomically and close it."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; figures are meant to be shared
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _pyplot().close(fig)
    return out


def _to_float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_summary(summary_csv: str | os.PathLike) -> tuple[list[str], dict[str, list[Any]]]:
    """Read a run's ``summary.csv`` column-wise.

    Returns:
        ``(header, columns)``; numeric-looking columns become lists of float (NaN when empty),
        the ``phase`` column (if any) stays a list of str.
    """
    with open(summary_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    columns: dict[str, list[Any]] = {}
    for name in header:
        values = [row.get(name, "") for row in rows]
        columns[name] = values if name == "phase" else [_to_float(v) for v in values]
    return header, columns


def plot_curves(summary_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """Plot every ``loss*`` column and every ``*acc*`` column of a run's ``summary.csv``.

    The header is read generically; the x axis is a running row index labelled with the epoch, so
    a summary holding a pretrain phase followed by a fine-tune phase draws as one continuous curve
    with a dotted line where the phase changes.

    Args:
        summary_csv: one row per epoch (columns such as epoch, phase, loss_cls, train_acc, val_acc).
        out_png: where to write the figure.

    Returns:
        The written PNG path.
    """
    header, cols = read_summary(summary_csv)
    n = len(next(iter(cols.values()), []))
    x = np.arange(1, n + 1)
    loss_names = [h for h in header if h.startswith("loss")]
    acc_names = [h for h in header if "acc" in h.lower() and h not in loss_names]
    plt = _pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name in loss_names:
        y = np.asarray(cols[name], dtype=float)
        if np.isfinite(y).any():
            ax_loss.plot(x, y, marker="o", markersize=3, label=name)
    for name in acc_names:
        y = np.asarray(cols[name], dtype=float)
        if np.isfinite(y).any():
            ax_acc.plot(x, y, marker="o", markersize=3, label=name)
    phases = cols.get("phase")
    if phases:
        for i in range(1, n):
            if phases[i] != phases[i - 1]:
                for ax in (ax_loss, ax_acc):
                    ax.axvline(i + 0.5, color="grey", linestyle=":", linewidth=1)
    title_phase = " / ".join(dict.fromkeys(p for p in (phases or []) if p))
    ax_loss.set_title(f"losses {title_phase}".strip())
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch (row of summary.csv)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if "epoch" in cols and n:
        epochs = cols["epoch"]
        step = max(1, n // 10)
        ticks = x[::step]
        ax_loss.set_xticks(ticks)
        ax_loss.set_xticklabels([_fmt_epoch(epochs[i - 1]) for i in ticks])
        ax_acc.set_xticks(ticks)
        ax_acc.set_xticklabels([_fmt_epoch(epochs[i - 1]) for i in ticks])
    if not n:
        ax_loss.text(0.5, 0.5, "no rows yet", ha="center", va="center", transform=ax_loss.transAxes)
    return _save(fig, out_png)


def _fmt_epoch(value: float) -> str:
    return str(int(value)) if np.isfinite(value) and float(value).is_integer() else f"{value:g}"


def plot_confusion(matrix: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str],
                   out_png: str | os.PathLike, title: str = "confusion matrix") -> Path:
    """Draw a confusion matrix (rows true class, columns predicted), row-normalised colours.

    Args:
        matrix: (C, C) int counts, ``matrix[true, pred]``.
        class_names: C names for the axes.
        out_png: where to write the figure.
        title: figure title.
    """
    cm = np.asarray(matrix, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {len(class_names)} class names")
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    plt = _pyplot()
    c = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * c, 1.0 + 0.6 * c))
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(c):
        for j in range(c):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(c))
    ax.set_yticks(range(c))
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticklabels(class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, out_png)


def _as_hwc_uint8(images: Any) -> list[np.ndarray]:
    """Accept (N,H,W,3) uint8, (N,3,H,W) float in [0,1], tensors or lists of either."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    out = []
    for img in images:
        if hasattr(img, "detach"):
            img = img.detach().cpu().numpy()
        a = np.asarray(img)
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = np.transpose(a, (1, 2, 0))
        if a.dtype != np.uint8:
            a = np.clip(a.astype(np.float32), 0.0, 1.0)
            a = (a * 255.0 + 0.5).astype(np.uint8)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        out.append(a)
    return out


def plot_reconstructions(clean: Any, occluded: Any, reconstructed: Any, out_png: str | os.PathLike,
                         max_images: int = 8) -> Path:
    """Rows as in the paper's Figure 4: clean (non-occluded) image, occluded input, decoder output.

    Args:
        clean, occluded, reconstructed: N images each, as (N, H, W, 3) uint8 RGB or (N, 3, H, W)
            float in [0, 1] (already de-normalised), numpy arrays or tensors.
        out_png: where to write the figure.
        max_images: at most this many columns.
    """
    rows = [("clean", _as_hwc_uint8(clean)), ("occluded", _as_hwc_uint8(occluded)),
            ("reconstructed", _as_hwc_uint8(reconstructed))]
    n = min(max_images, *(len(r[1]) for r in rows))
    if n == 0:
        raise ValueError("plot_reconstructions needs at least one image")
    plt = _pyplot()
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.0), squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for j in range(n):
            ax = axes[r][j]
            ax.imshow(imgs[j], cmap="gray" if imgs[j].ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name)
    return _save(fig, out_png)


def plot_category_bars(table: Mapping[str, Mapping[str, float]], out_png: str | os.PathLike,
                       title: str = "accuracy by occluder category", ylabel: str = "accuracy (%)") -> Path:
    """Grouped bars: one group per category / coverage bin, one bar per model.

    Args:
        table: ``{model_name: {group: accuracy}}``, e.g. ``{"resnet": {"food": 71.0, ...},
            "full": {...}}``; accuracies in percent (or fractions, drawn as given). Missing
            groups (NaN / absent) leave a gap.
        out_png: where to write the figure.
    """
    models = list(table)
    groups: list[str] = []
    for m in models:
        for g in table[m]:
            if g not in groups:
                groups.append(g)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) + 2), 4))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(groups))
    for k, m in enumerate(models):
        ys = [float(table[m].get(g, math.nan)) for g in groups]
        bars = ax.bar(x + (k - (len(models) - 1) / 2) * width, ys, width, label=m)
        for bar, y in zip(bars, ys):
            if np.isfinite(y):
                ax.text(bar.get_x() + bar.get_width() / 2, y, f"{y:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if models:
        ax.legend(fontsize=8)
    return _save(fig, out_png)


def plot_pairs(manifest: str | os.PathLike, out_png: str | os.PathLike, split: str = "test",
               per_category: int = 2, max_columns: int = 10) -> Path:
    """Example clean / occluded / mask triples from an ``occsynth generate`` manifest.

    Takes up to ``per_category`` rows of each occluder category of ``split`` (falling back to any
    split when that one is empty), one column per pair, rows clean / occluded / mask.
    """
    from occlusion_synth.io import read_image

    manifest = Path(manifest)
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    chosen = [r for r in rows if r.get("split") == split] or rows
    picked: list[dict] = []
    seen: dict[str, int] = {}
    for r in chosen:
        cat = r.get("category", "")
        if seen.get(cat, 0) < per_category:
            seen[cat] = seen.get(cat, 0) + 1
            picked.append(r)
        if len(picked) >= max_columns:
            break
    if not picked:
        raise ValueError(f"{manifest}: no rows to draw")
    root = manifest.parent
    plt = _pyplot()
    n = len(picked)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.2), squeeze=False)
    for j, r in enumerate(picked):
        for i, key in enumerate(("clean", "occluded", "mask")):
            ax = axes[i][j]
            path = root / r.get(key, "")
            if r.get(key) and path.is_file():
                img = read_image(path)
                ax.imshow(img[..., 0] if key == "mask" else img, cmap="gray" if key == "mask" else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(key)
            if i == 0:
                ax.set_title(f"{r.get('category', '')}\n{r.get('label_name', '')}", fontsize=8)
    return _save(fig, out_png)
