"""Evaluate a trained student on paired data: occluded accuracy, clean reference, robustness tables.

The student is scored on the occluded images (the paper's metric: overall accuracy on the seven
classes); the same pairs' clean images are scored too, for reference, so the gap clean - occluded
shows how much the occluders cost. Results are plain JSON-ready dicts built by
:func:`fer_pi.metrics.classification_report`.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from . import metrics


def class_names_for(num_classes: int) -> list[str]:
    """Canonical class names ``neutral, happiness, ...`` for ``num_classes`` outputs."""
    from occlusion_synth.labels import CANONICAL

    if num_classes <= len(CANONICAL):
        return list(CANONICAL[:num_classes])
    return list(CANONICAL) + [f"class{i}" for i in range(len(CANONICAL), num_classes)]


def _logits_of(output: Any):
    """Backbones return ``(logits, features)``; accept a bare logits tensor too."""
    if isinstance(output, (tuple, list)):
        return output[0], (output[1] if len(output) > 1 else None)
    return output, None


def evaluate(model, loader, device="cpu", decoder=None, *, clean_reference: bool = True,
             class_names: list[str] | None = None, num_examples: int = 8,
             coverage_edges=metrics.COVERAGE_EDGES, id_groups: dict[str, str] | None = None) -> dict:
    """Score ``model`` on every batch of ``loader``.

    Args:
        model: a :class:`fer_pi.models.Backbone` (forward(x) -> (logits (B, C), features)).
        loader: yields dict batches with ``occluded``/``clean`` (B, 3, S, S) float normalised,
            ``label`` (B,) int64, ``category`` (B,) str, ``occluded_fraction`` (B,) float.
        device: torch device or name.
        decoder: optional :class:`fer_pi.models.Decoder`; when given, the mean reconstruction
            MSE against the de-normalised clean image ([0, 1] RGB, as ``loss_rec``) is reported
            and the mean per-image PSNR in dB (``rec_psnr``); the first ``num_examples`` triples
            are returned under ``"examples"`` (Figure 4).
        clean_reference: also score the clean images of the same pairs.
        class_names: names for the C outputs (canonical names by default).
        id_groups: sample id -> group (e.g. :func:`template_sets`); when given, the result has
            ``per_template_set``: ``{group: {"accuracy", "clean_accuracy", "n"}}``.

    Returns:
        ``{"n", "accuracy", "per_class", "per_category", "per_coverage_bin", "confusion",
        "class_names", "mean_loss", "clean": {...} (if clean_reference), "rec_mse", "rec_psnr"
        (if decoder)}``
        plus ``"examples"`` (numpy arrays, not JSON; pop it before dumping) when a decoder is given.
        Accuracies are fractions in [0, 1].
    """
    import torch
    import torch.nn.functional as F

    device = torch.device(device)
    was_training = model.training
    model.eval()
    if decoder is not None:
        dec_training = decoder.training
        decoder.eval()
    y_true: list[int] = []
    y_pred: list[int] = []
    y_pred_clean: list[int] = []
    cats: list[str] = []
    ids: list[str] = []
    fractions: list[float] = []
    loss_sum = 0.0
    rec_sum, rec_count, psnr_sum = 0.0, 0, 0.0
    ex_clean, ex_occ, ex_rec = [], [], []
    num_classes = None
    try:
        with torch.no_grad():
            for batch in loader:
                occ = batch["occluded"].to(device).float()
                labels = batch["label"].to(device).long()
                logits, feats = _logits_of(model(occ))
                num_classes = logits.shape[1]
                loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
                y_true.extend(labels.cpu().tolist())
                y_pred.extend(logits.argmax(1).cpu().tolist())
                cats.extend(str(c) or "none" for c in batch.get("category", ["unknown"] * len(labels)))
                ids.extend(str(i) for i in batch.get("id", [""] * len(labels)))
                fr = batch.get("occluded_fraction")
                fractions.extend([math.nan] * len(labels) if fr is None else
                                 [float(x) for x in (fr.tolist() if hasattr(fr, "tolist") else fr)])
                if clean_reference and "clean" in batch:
                    clean = batch["clean"].to(device).float()
                    y_pred_clean.extend(_logits_of(model(clean))[0].argmax(1).cpu().tolist())
                if decoder is not None and feats is not None and "clean" in batch:
                    # the decoder outputs [0, 1] RGB, compared with the de-normalised clean image
                    target = _denormalize(batch["clean"].to(device).float())
                    rec = decoder(feats).float()
                    if rec.shape[-2:] != target.shape[-2:]:
                        rec = F.interpolate(rec, size=target.shape[-2:], mode="bilinear", align_corners=False)
                    mse = ((rec - target) ** 2).mean(dim=(1, 2, 3))
                    rec_sum += float(mse.sum())
                    psnr_sum += float((-10.0 * torch.log10(mse.clamp_min(1e-10))).sum())
                    rec_count += rec.shape[0]
                    take = num_examples - len(ex_clean)
                    if take > 0:
                        ex_clean.extend(_to_uint8(target[:take]))
                        ex_occ.extend(_to_uint8(_denormalize(occ[:take])))
                        ex_rec.extend(_to_uint8(rec[:take]))
    finally:
        model.train(was_training)
        if decoder is not None:
            decoder.train(dec_training)
    if num_classes is None:
        from .errors import DataError

        raise DataError("evaluation data is empty: the split has no sample")
    names = class_names or class_names_for(num_classes)
    result = metrics.classification_report(y_true, y_pred, names, categories=cats,
                                           fractions=fractions, edges=coverage_edges)
    result["mean_loss"] = loss_sum / len(y_true)
    if y_pred_clean:
        clean_rep = metrics.classification_report(y_true, y_pred_clean, names, categories=cats)
        result["clean"] = {k: clean_rep[k] for k in ("n", "accuracy", "per_class", "confusion", "per_category")}
    if id_groups:
        result["per_template_set"] = _group_accuracy(id_groups, ids, y_true, y_pred, y_pred_clean)
    if rec_count:
        result["rec_mse"] = rec_sum / rec_count
        result["rec_psnr"] = psnr_sum / rec_count
        result["examples"] = {"clean": np.stack(ex_clean), "occluded": np.stack(ex_occ),
                              "reconstructed": np.stack(ex_rec)}
    return result


def _group_accuracy(id_groups: dict[str, str], ids: list[str], y_true: list[int], y_pred: list[int],
                    y_pred_clean: list[int]) -> dict:
    """``{group: {"accuracy", "clean_accuracy", "n"}}`` over the samples whose id has a group."""
    acc: dict[str, list[int]] = {}
    for k, sid in enumerate(ids):
        g = id_groups.get(sid)
        if g is None:
            continue
        a = acc.setdefault(g, [0, 0, 0])
        a[0] += int(y_pred[k] == y_true[k])
        a[1] += int(bool(y_pred_clean) and y_pred_clean[k] == y_true[k])
        a[2] += 1
    return {g: {"accuracy": a[0] / a[2], "clean_accuracy": (a[1] / a[2]) if y_pred_clean else None, "n": a[2]}
            for g, a in sorted(acc.items())}


def template_sets(manifest, split: str = "test") -> dict[str, str]:
    """Pair id -> ``seen`` / ``unseen`` / ``block`` for a manifest made with
    ``occsynth generate --holdout-templates`` (empty otherwise).

    The set of each template is read from the ``dataset.json`` next to the manifest
    (:mod:`occlusion_synth.templates.split`); pairs occluded by a procedural block (no template)
    are ``block``, neither seen nor unseen.
    """
    import json
    from pathlib import Path

    from .data import read_manifest

    info_path = Path(manifest).parent / "dataset.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    sets = {t.get("name"): t.get("set") for t in info.get("templates") or [] if t.get("set")}
    if not sets:
        return {}
    out = {}
    for row in read_manifest(manifest):
        if row.get("split") != split:
            continue
        tpl = row.get("template") or ""
        out[row["id"]] = sets.get(tpl) or ("block" if not tpl or row.get("category") == "block" else "unknown")
    return out


def _denormalize(x):
    """(B, 3, S, S) ImageNet-normalised -> [0, 1] RGB, the target ``loss_rec`` uses in training."""
    from .data import denormalize

    return denormalize(x)


def _to_uint8(x) -> list[np.ndarray]:
    """(B, 3, S, S) float in [0, 1] -> list of (S, S, 3) uint8 RGB."""
    arr = x.detach().float().clamp(0, 1).cpu().numpy().transpose(0, 2, 3, 1)
    return list((arr * 255.0 + 0.5).astype(np.uint8))


def strip_examples(result: dict) -> dict:
    """A copy of ``result`` without the non-JSON ``examples`` entry."""
    return {k: v for k, v in result.items() if k != "examples"}


def evaluate_checkpoint(checkpoint, manifest, split: str = "test", which: str = "student",
                        image_size: int | None = None, batch_size: int = 64, num_workers: int = 0,
                        device: str = "auto") -> dict:
    """Load a fer_pi checkpoint and :func:`evaluate` it on one split of a paired manifest.

    The reconstruction is scored too when the checkpoint holds a decoder (student only). When the
    student was trained under a teacher that can be found (:func:`find_teacher`), the teacher is
    scored on the clean images of the same split: the quality of the guidance.

    Returns:
        The :func:`evaluate` dict plus ``checkpoint``, ``which``, ``split``, ``manifest``,
        ``image_size``, ``arch``, ``method``, ``phase`` and, when a teacher was found,
        ``teacher``: ``{"checkpoint", "accuracy" (clean images), "n", "occluded_accuracy"}``.
    """
    from .checkpoint import load_checkpoint
    from .data import PairedDataset, build_loader
    from .models import Decoder, load_for_inference
    from .utils import resolve_device

    dev = resolve_device(device)
    model, config = load_for_inference(checkpoint, which=which, device=dev)
    payload = load_checkpoint(checkpoint)
    size = int(image_size or config.get("image_size", 88))
    decoder = None
    if which == "student" and payload.get("decoder"):
        decoder = Decoder(model.feature_channels, size)
        try:
            decoder.load_state_dict(payload["decoder"])
            decoder.to(dev).eval()
        except RuntimeError:  # a checkpoint of the former transposed-convolution decoder
            from .utils import log

            log.warning(f"{checkpoint}: its decoder predates the resize-convolution decoder; "
                        "reconstructions are not scored")
            decoder = None
    dataset = PairedDataset(manifest, split, size, augment=False)
    loader = build_loader(dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=num_workers)
    result = evaluate(model, loader, dev, decoder=decoder, id_groups=template_sets(manifest, split))
    result.update(checkpoint=str(checkpoint), which=which, split=split, manifest=str(manifest),
                  image_size=size, arch=config.get("arch"), method=config.get("method"),
                  phase=payload.get("phase"))
    teacher_path = find_teacher(checkpoint, payload) if which == "student" else None
    if teacher_path is not None:
        teacher, _ = load_for_inference(teacher_path, which="teacher", device=dev)
        t = evaluate(teacher, loader, dev, num_examples=0)
        result["teacher"] = {"checkpoint": str(teacher_path), "accuracy": (t.get("clean") or {}).get("accuracy"),
                             "n": (t.get("clean") or {}).get("n"), "occluded_accuracy": t.get("accuracy")}
    return result


def find_teacher(checkpoint, payload: dict | None = None):
    """The teacher checkpoint that guided a student: the checkpoint itself when it holds teacher
    weights (a pre-training ``last.pt``), else the ``teacher`` path in its config, else a
    ``teacher.pt`` next to it (a pre-training folder). None when none exists."""
    from pathlib import Path

    from .checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint) if payload is None else payload
    if "teacher" in payload:
        return Path(checkpoint)
    named = (payload.get("config") or {}).get("teacher") or ""
    for candidate in ([Path(named)] if named else []) + [Path(checkpoint).parent / "teacher.pt"]:
        if candidate.is_file():
            return candidate
    return None



# ----------------------------------------------------------------------------- throughput
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_benchmark(arch: str = "resnet50", image_size: int = 224, batch_sizes=(8, 32), steps: int = 10,
                  warmup: int = 2, device: str = "auto", amp: str = "off", channels_last: bool = True,
                  mode: str = "both", seed: int = 0, threads: int = 0) -> dict:
    """Time the full fine-tune step (pairs/s) and inference (images/s) on random data.

    A training step is exactly what ``fer-pi train --preset full`` runs per batch
    (:mod:`fer_pi.engine.steps`): student forward on the occluded batch, frozen teacher forward on
    the clean batch, one discriminator step on detached features, one student+decoder step on all
    four losses. Inference is the student's forward pass under ``no_grad`` in eval mode. Each
    measurement runs ``warmup`` untimed steps, then ``steps`` individually timed ones
    (``torch.cuda.synchronize`` before reading the clock on GPU); rates use the median step time.
    ``threads > 0`` sets torch's CPU thread count for the measurement (restored afterwards).

    Returns:
        ``{"device", "device_name", "torch", "threads", "arch", "image_size", "amp", "steps",
        "warmup", "results": [{"batch_size", "train_pairs_per_s", "train_s_per_step",
        "train_steps", "infer_images_per_s", "infer_s_per_step", "infer_steps"}, ...]}``.
    """
    import torch

    from .utils import amp_dtype, resolve_device

    dev = resolve_device(device)
    dtype = amp_dtype(amp, dev)
    old_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        return _run_benchmark(arch, image_size, batch_sizes, steps, warmup, dev, dtype, amp, channels_last,
                              mode, seed)
    finally:
        torch.set_num_threads(old_threads)


def _run_benchmark(arch, image_size, batch_sizes, steps, warmup, dev, dtype, amp, channels_last, mode,
                   seed) -> dict:
    import platform
    import time

    import torch

    from .config import TrainConfig
    from .engine.steps import PrivilegedTask, discriminator_step, student_step
    from .models import Decoder, Discriminator, build_backbone
    from .utils import autocast, make_scaler, seed_everything

    seed_everything(seed)
    fmt = torch.channels_last if (channels_last and dev.type == "cuda") else torch.contiguous_format
    student = build_backbone(arch, None).to(dev, memory_format=fmt)
    teacher = build_backbone(arch, None).to(dev, memory_format=fmt)
    disc = Discriminator(student.feature_channels).to(dev)
    decoder = Decoder(student.feature_channels, image_size).to(dev)
    cfg = TrainConfig.from_preset("full", arch=arch, image_size=image_size, weights="none")
    task = PrivilegedTask(student, teacher, disc, decoder, cfg)
    opt_s = torch.optim.Adam([{"params": student.parameters(), "lr": cfg.lr_student},
                              {"params": decoder.parameters(), "lr": cfg.lr_decoder}])
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_disc)
    scaler_s, scaler_d = make_scaler(dev, dtype), make_scaler(dev, dtype)
    ac = lambda: autocast(dev, dtype)  # noqa: E731

    def batch_of(n: int) -> dict:
        g = torch.Generator().manual_seed(seed + n)
        x = torch.randn(2, n, 3, image_size, image_size, generator=g)
        return {"clean": x[0].to(dev).contiguous(memory_format=fmt),
                "occluded": x[1].to(dev).contiguous(memory_format=fmt),
                "label": torch.randint(0, 7, (n,), generator=g).to(dev)}

    def train_once(batch: dict) -> None:
        task.train(True)
        with ac():
            fw = task.forward(batch)
        discriminator_step(task, fw, opt_d, scaler_d, k1=cfg.k1, autocast=ac)
        student_step(task, fw, batch, opt_s, scaler_s, autocast=ac)

    def infer_once(batch: dict) -> None:
        student.eval()
        with torch.no_grad(), ac():
            student(batch["occluded"])

    def timed(fn, batch: dict) -> tuple[float, float]:
        """(median, mean) seconds per step; each step is synchronised and timed on its own so that
        the median resists transient load from other processes on a shared machine."""
        for _ in range(warmup):
            fn(batch)
        _sync(dev)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            fn(batch)
            _sync(dev)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), float(np.mean(times))

    results = []
    for bs in batch_sizes:
        batch = batch_of(int(bs))
        row: dict[str, Any] = {"batch_size": int(bs)}
        if mode in ("both", "train"):
            med, mean = timed(train_once, batch)
            row.update(train_pairs_per_s=bs / med, train_s_per_step=med, train_s_per_step_mean=mean,
                       train_steps=steps)
        if mode in ("both", "infer"):
            med, mean = timed(infer_once, batch)
            row.update(infer_images_per_s=bs / med, infer_s_per_step=med, infer_s_per_step_mean=mean,
                       infer_steps=steps)
        results.append(row)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(platform.machine())
    return {"device": dev.type, "device_name": name, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "arch": arch, "image_size": image_size, "amp": amp,
            "channels_last": fmt is torch.channels_last, "steps": steps, "warmup": warmup,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "results": results}


def _cpu_name(default: str) -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default
