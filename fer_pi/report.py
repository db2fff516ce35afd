"""Markdown writers: one evaluation, the robustness comparison, the ablation table, the demo report.

Everything here reads plain dicts (the JSON written by ``fer-pi evaluate``) and writes markdown
with pictures linked by paths relative to the markdown file, so a report folder can be moved or
viewed on a code host as is.

Command line: ``fer-pi report`` (what ``make demo`` calls at the end)::

    fer-pi report --run-dir runs/demo                            # RUN/resnet vs RUN/full
    fer-pi report runs/demo/resnet runs/demo/full --out runs/demo/report.md --pairs data/demo_pairs

``fer-pi evaluate`` writes its folder with :func:`write_evaluation` and, given a baseline,
:func:`write_robustness`.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Pan et al. 2019, Table 1 (RAF-DB and AffectNet columns, synthesized occlusions, accuracy %).
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "resnet": {"rafdb": 77.54, "affectnet": 54.54},
    "sim": {"rafdb": 80.41, "affectnet": 56.02},
    "lir": {"rafdb": 80.28, "affectnet": 55.11},
    "sim_lir": {"rafdb": 80.57, "affectnet": 56.09},
    "adv": {"rafdb": 81.19, "affectnet": 55.94},
    "rec": {"rafdb": 80.73, "affectnet": 55.77},
    "adv_rec": {"rafdb": 81.35, "affectnet": 56.11},
    "full": {"rafdb": 81.97, "affectnet": 56.42},
}
PRESET_TITLES: dict[str, str] = {
    "resnet": "ResNet", "sim": "ResNet + l_sim", "lir": "ResNet + l_LIR", "sim_lir": "ResNet + l_sim + l_LIR",
    "adv": "ResNet + l_adv", "rec": "ResNet + l_rec", "adv_rec": "ResNet + l_adv + l_rec",
    "full": "ResNet + l_sim + l_LIR + l_adv + l_rec (full)",
}
EVAL_JSON = "evaluation.json"


def pct(x: float | None, digits: int = 2) -> str:
    """Fraction -> ``"81.97"``; ``None``/NaN -> ``"n/a"``."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100.0 * float(x):.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def evaluation_markdown(result: Mapping, title: str = "Evaluation") -> str:
    """One model's evaluation (the dict from :func:`fer_pi.evaluation.evaluate`) as markdown."""
    parts = [f"## {title}\n\n"]
    clean = result.get("clean") or {}
    parts.append(_table(["input", "accuracy (%)", "n"],
                        [["occluded", pct(result.get("accuracy")), result.get("n")]]
                        + ([["clean (reference)", pct(clean.get("accuracy")), clean.get("n")]] if clean else [])
                        + ([["teacher on clean (the guide)", pct(result["teacher"].get("accuracy")),
                             result["teacher"].get("n")]] if result.get("teacher") else [])))
    sets = result.get("per_template_set") or {}
    if sets:
        parts.append("\nOccluder templates seen in training vs held out (`occsynth generate --holdout-templates`; "
                     "procedural blocks are neither):\n\n")
        parts.append(_table(["test pairs", "occluded acc (%)", "clean acc (%)", "n"],
                            [[g, pct(v.get("accuracy")), pct(v.get("clean_accuracy")), v.get("n")]
                             for g, v in sets.items()]))
    if "rec_mse" in result:
        parts.append(f"\nReconstruction MSE ([0, 1] RGB, against the clean image): {result['rec_mse']:.4f}"
                     + (f", PSNR {result['rec_psnr']:.2f} dB" if "rec_psnr" in result else "") + "\n")
    parts.append("\n### Per class\n\n")
    parts.append(_table(["class", "occluded acc (%)", "clean acc (%)", "n"],
                        [[name, pct(v.get("accuracy")),
                          pct((clean.get("per_class") or {}).get(name, {}).get("accuracy")) if clean else "n/a",
                          v.get("n")] for name, v in result.get("per_class", {}).items()]))
    for key, label in (("per_category", "occluder category"), ("per_coverage_bin", "coverage bin")):
        table = result.get(key)
        if table:
            parts.append(f"\n### Per {label}\n\n")
            parts.append(_table([label, "accuracy (%)", "n"],
                                [[g, pct(v.get("accuracy")), v.get("n")] for g, v in table.items()]))
    return "".join(parts)


def robustness_markdown(results: Mapping[str, Mapping], key: str = "per_category",
                        label: str = "occluder category") -> str:
    """Side-by-side accuracy per group for several models (e.g. baseline vs full).

    Args:
        results: ``{model_name: evaluation dict}``.
        key: ``"per_category"`` or ``"per_coverage_bin"``.
    """
    models = list(results)
    groups: list[str] = []
    for m in models:
        for g in (results[m].get(key) or {}):
            if g not in groups:
                groups.append(g)
    rows = []
    for g in groups:
        cells = [(results[m].get(key) or {}).get(g) for m in models]
        n = next((c["n"] for c in cells if c), 0)
        accs = [c.get("accuracy") if c else None for c in cells]
        row = [g, n] + [pct(a) for a in accs]
        if len(models) == 2 and None not in accs:
            row.append(f"{100 * (accs[1] - accs[0]):+.2f}")
        rows.append(row)
    header = [label, "n"] + [f"{m} (%)" for m in models] + ([f"{models[1]} - {models[0]}"] if len(models) == 2 else [])
    return _table(header, rows)


def robustness_bars_table(results: Mapping[str, Mapping], key: str = "per_category") -> dict[str, dict[str, float]]:
    """``{model: {group: accuracy %}}`` for :func:`fer_pi.plots.plot_category_bars`."""
    out = {}
    for m, r in results.items():
        out[m] = {g: (100.0 * v["accuracy"] if v.get("accuracy") is not None else math.nan)
                  for g, v in (r.get(key) or {}).items()}
    return out


def ablation_markdown(summary: Sequence[Mapping], dataset_note: str = "") -> str:
    """The Table-1-style comparison.

    Args:
        summary: one mapping per preset with ``preset``, ``mean``, ``std`` (accuracy %, std
            ``nan`` for one seed), ``n`` (seeds), optional ``clean_mean``.
    """
    by = {s["preset"]: s for s in summary}
    base = by.get("resnet")
    rows = []
    for s in summary:
        p = s["preset"]
        paper = PAPER_TABLE1.get(p, {})
        std = "n/a" if s.get("std") is None or math.isnan(s["std"]) else f"{s['std']:.2f}"
        delta = (f"{s['mean'] - base['mean']:+.2f}" if base and p != "resnet" and not math.isnan(s["mean"]) else "")
        pdelta = (f"{paper['rafdb'] - PAPER_TABLE1['resnet']['rafdb']:+.2f}" if paper and p != "resnet" else "")
        rows.append([p, PRESET_TITLES.get(p, p), f"{s['mean']:.2f}", std, s.get("n", ""), delta]
                    + [_fmt_pct(s.get(k)) for k in ("seen_mean", "unseen_mean", "clean_mean", "teacher_mean")]
                    + [f"{paper['rafdb']:.2f}" if paper else "", pdelta])
    header = ["preset", "method", "occluded acc mean (%)", "std", "seeds", "vs resnet", "seen occluders (%)",
              "unseen occluders (%)", "clean acc (%)", "teacher clean acc (%)", "paper RAF-DB (%)",
              "paper vs ResNet"]
    text = _table(header, rows)
    return (dataset_note + "\n\n" if dataset_note else "") + text


def _fmt_pct(x: float | None) -> str:
    """A mean accuracy in % with two decimals, ``n/a`` when missing or nan."""
    return "n/a" if x is None or math.isnan(x) else f"{x:.2f}"


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def find_evaluation(run_dir: str | os.PathLike) -> Path | None:
    """The ``evaluation.json`` of a run: in the run folder, or in its ``eval*`` sub-folder."""
    run = Path(run_dir)
    if (run / EVAL_JSON).is_file():
        return run / EVAL_JSON
    hits = sorted(run.glob(f"eval*/{EVAL_JSON}"))
    return hits[0] if hits else None


def _run_name(run_dir: Path) -> str:
    for name in ("config.json", "args.json"):
        p = run_dir / name
        if p.is_file():
            try:
                cfg = json.loads(p.read_text())
                preset = cfg.get("preset") or cfg.get("method_preset") or cfg.get("method")
                if isinstance(preset, str) and preset:
                    return preset
            except (ValueError, AttributeError):
                pass
    return run_dir.name


def write_demo_report(run_dirs: Sequence[str | os.PathLike], out_md: str | os.PathLike,
                      pairs_dir: str | os.PathLike | None = None, names: Sequence[str] | None = None) -> Path:
    """Write the demo report: baseline vs full accuracy, robustness tables, pictures.

    Args:
        run_dirs: training run folders (``fer-pi train --out``), each already evaluated with
            ``fer-pi evaluate CKPT --out RUN/eval`` (or ``--out RUN``); the first is the baseline.
        out_md: the markdown file to write (e.g. ``runs/demo/report.md``).
        pairs_dir: optional ``occsynth generate`` output; a picture of example test pairs
            (clean / occluded / mask per category) is drawn from its manifest.
        names: display names for the runs (default: preset from the run config, else folder name).

    Returns:
        The markdown path. Raises :class:`fer_pi.errors.DataError` when a run has no evaluation.
    """
    from . import plots
    from .errors import DataError

    out = Path(out_md)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [Path(r) for r in run_dirs]
    results: dict[str, dict] = {}
    eval_paths: dict[str, Path] = {}
    for i, run in enumerate(runs):
        ev = find_evaluation(run)
        if ev is None:
            raise DataError(f"{run}: no {EVAL_JSON} found; run "
                            f"`fer-pi evaluate CKPT --data ... --out {run}/eval` first")
        name = names[i] if names else _run_name(run)
        if name in results:
            name = f"{name}-{i}"
        results[name] = json.loads(ev.read_text())
        eval_paths[name] = ev
    lines = ["# Demo report: occluded facial expression recognition with privileged information\n\n",
             "Accuracy of each model on the held-out **occluded** test split (the paper's metric), with the "
             "same pairs' clean images for reference. All numbers were measured by `fer-pi evaluate` on this "
             "machine; the demo data is small and synthetic, so the absolute numbers are not comparable with "
             "the paper's RAF-DB figures.\n\n"]
    def set_acc(r: Mapping, g: str) -> str:
        return pct(((r.get("per_template_set") or {}).get(g) or {}).get("accuracy"))

    rows = [[m, pct(r.get("accuracy")), set_acc(r, "seen"), set_acc(r, "unseen"),
             pct((r.get("clean") or {}).get("accuracy")),
             pct((r.get("teacher") or {}).get("accuracy")), r.get("n"),
             f"{r['rec_mse']:.4f}" if "rec_mse" in r else "",
             f"{r['rec_psnr']:.2f}" if "rec_psnr" in r else ""] for m, r in results.items()]
    lines.append(_table(["model", "occluded acc (%)", "seen occluders (%)", "unseen occluders (%)",
                         "clean acc (%)", "teacher clean acc (%)", "n test", "rec MSE", "rec PSNR (dB)"], rows))
    lines.append("\nSeen / unseen occluders: test pairs occluded by templates used in training vs by held-out "
                 "templates (n/a without `--holdout-templates`). The teacher is the frozen clean-image network "
                 "that guides the student (its accuracy on the clean test images).\n")
    names_list = list(results)
    if len(names_list) >= 2:
        a, b = results[names_list[0]].get("accuracy"), results[names_list[-1]].get("accuracy")
        if a is not None and b is not None:
            lines.append(f"\n{names_list[-1]} - {names_list[0]}: {100 * (b - a):+.2f} points on "
                         f"{results[names_list[0]].get('n')} test images (one seed; see docs/results.md "
                         "for the seed noise).\n")
    for key, label, png in (("per_category", "occluder category", "robustness_category.png"),
                            ("per_coverage_bin", "coverage bin", "robustness_coverage.png")):
        if any(r.get(key) for r in results.values()):
            lines.append(f"\n## Accuracy per {label}\n\n")
            lines.append(robustness_markdown(results, key, label))
            plots.plot_category_bars(robustness_bars_table(results, key), out.parent / png,
                                     title=f"accuracy by {label}")
            lines.append(f"\n![accuracy per {label}]({png})\n")
    lines.append("\n## Pictures\n\n")
    for (name, ev), run in zip(eval_paths.items(), runs):
        lines.append(f"\n### {name}\n")
        for pic, what in (("curves.png", "training curves"),):
            hits = sorted(run.glob(pic)) + sorted(run.glob(f"*/{pic}"))
            if hits:
                lines.append(f"\n![{name} {what}]({_rel(hits[0], out.parent)})\n")
        for pic, what in (("confusion.png", "confusion matrix (occluded test)"),
                          ("reconstructions.png", "clean / occluded / reconstructed (as the paper's Figure 4)")):
            if (ev.parent / pic).is_file():
                lines.append(f"\n{what}:\n\n![{name} {what}]({_rel(ev.parent / pic, out.parent)})\n")
    shared = sorted({r.parent / "pretrain" / "curves.png" for r in runs
                     if (r.parent / "pretrain" / "curves.png").is_file()})
    for pic in shared:  # make demo pretrains once into RUN/pretrain for both methods
        lines.append(f"\n### Shared pre-training (teacher on clean, student on occluded)\n\n"
                     f"![pre-training curves]({_rel(pic, out.parent)})\n")
    preview = out.parent / "pairs_preview.png"  # `occsynth preview` contact sheet written by make demo
    if preview.is_file():
        lines.append(f"\n### Generated pairs (occsynth preview)\n\n![pairs preview]({preview.name})\n")
    if pairs_dir is not None:
        manifest = Path(pairs_dir) / "manifest.csv"
        if manifest.is_file():
            png = plots.plot_pairs(manifest, out.parent / "example_pairs.png")
            lines.append(f"\n### Example test pairs (clean / occluded / mask)\n\n![example pairs]({png.name})\n")
    for name in names_list:
        lines.append("\n" + evaluation_markdown(results[name], title=f"Details: {name}"))
    write_text(out, "".join(lines))
    return out


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (a crash leaves the old file or the new one)."""
    from occlusion_synth.io import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.2f}"


def write_evaluation(result: dict, out_dir: str | os.PathLike, title: str) -> Path:
    """Write one evaluation's folder: ``evaluation.json``, ``evaluation.md``, ``confusion.png``,
    ``category.png`` and, when ``result`` holds ``examples``, ``reconstructions.png``.

    Args:
        result: the dict of :func:`fer_pi.evaluation.evaluate_checkpoint` (``examples`` is
            popped from it).
        out_dir: the folder (created).
        title: heading of ``evaluation.md`` (e.g. the checkpoint, network and split).

    Returns:
        The path of ``evaluation.json``.
    """
    from . import plots
    from .evaluation import strip_examples

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = result.pop("examples", None)
    plots.plot_confusion(result["confusion"], result["class_names"], out / "confusion.png",
                         title=f"{result.get('which', 'model')} on occluded {result.get('split', '')}".strip())
    if examples is not None:
        plots.plot_reconstructions(examples["clean"], examples["occluded"], examples["reconstructed"],
                                   out / "reconstructions.png")
    if result.get("per_category"):
        plots.plot_category_bars({result.get("which", "model"): {g: 100 * v["accuracy"]
                                                                for g, v in result["per_category"].items()}},
                                 out / "category.png")
    write_text(out / EVAL_JSON, json.dumps(strip_examples(result), indent=2) + "\n")
    write_text(out / "evaluation.md", evaluation_markdown(result, title=title))
    return out / EVAL_JSON


def write_robustness(results: Mapping[str, Mapping], out_dir: str | os.PathLike, split: str = "test") -> Path:
    """Baseline vs model: ``robustness.md`` and bar charts per occluder category and coverage bin.

    Args:
        results: ``{baseline name: evaluation dict, model name: evaluation dict}`` (baseline first).
        out_dir: the folder (created).

    Returns:
        The path of ``robustness.md``.
    """
    from . import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(results)
    base, model = results[names[0]], results[names[-1]]
    text = [f"# Occlusion robustness: {names[-1]} vs {names[0]} ({split} split)\n\n",
            f"Occluded accuracy: {names[0]} {_fmt(base.get('accuracy'))}%, "
            f"{names[-1]} {_fmt(model.get('accuracy'))}% (n = {model.get('n')}).\n"]
    for key, label, png in (("per_category", "occluder category", "robustness_category.png"),
                            ("per_coverage_bin", "coverage bin", "robustness_coverage.png")):
        text += [f"\n## Accuracy per {label}\n\n", robustness_markdown(results, key, label), f"\n![{label}]({png})\n"]
        plots.plot_category_bars(robustness_bars_table(results, key), out / png,
                                 title=f"accuracy by {label}: {names[-1]} vs {names[0]}")
    write_text(out / "robustness.md", "".join(text))
    return out / "robustness.md"


def baseline_results(result: dict, baseline: str | os.PathLike, manifest: str | os.PathLike,
                     **evaluate_options: Any) -> dict[str, dict]:
    """``{baseline name: its evaluation, model name: result}``: the baseline is read from its
    ``evaluation.json`` or scored from its checkpoint on ``manifest`` with ``evaluate_options``
    (``split``, ``image_size``, ``batch_size``, ``num_workers``, ``device``)."""
    from .evaluation import evaluate_checkpoint, strip_examples

    path = Path(baseline)
    if path.suffix == ".json":
        try:
            base = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            from .errors import DataError

            raise DataError(f"--baseline {path}: cannot read ({exc})") from None
    else:
        base = strip_examples(evaluate_checkpoint(path, manifest, **evaluate_options))
    names = [base.get("method") or "baseline", result.get("method") or "model"]
    if names[0] == names[1]:
        names = ["baseline", "model"]
    return {names[0]: base, names[1]: result}


def demo_report(run_dir: str | os.PathLike, out_md: str | os.PathLike | None = None,
                runs: Sequence[str] = ("resnet", "full"), pairs_dir: str | os.PathLike | None = None) -> Path:
    """The ``make demo`` report: ``RUN/{resnet,full}`` (each evaluated into ``eval/``) -> ``RUN/report.md``.

    The pairs folder for the example picture defaults to the folder of the manifest named in the
    first run's ``config.json`` (``data``).
    """
    run = Path(run_dir)
    dirs = [run / r for r in runs if (run / r).is_dir()]
    if not dirs:
        from .errors import DataError

        raise DataError(f"{run}: none of the run folders {', '.join(runs)} exist")
    if pairs_dir is None:
        try:
            data = json.loads((dirs[0] / "config.json").read_text()).get("data", "")
            p = Path(data)
            pairs_dir = (p if p.is_dir() else p.parent) if data else None
        except (OSError, ValueError):
            pairs_dir = None
    return write_demo_report(dirs, out_md or run / "report.md", pairs_dir=pairs_dir)
