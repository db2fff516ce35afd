"""``fer-pi evaluate``, ``fer-pi predict`` and ``fer-pi bench``: thin wrappers over fer_pi's library
(:mod:`fer_pi.evaluation`, :mod:`fer_pi.predict`, :mod:`fer_pi.report`)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from occlusion_synth.cli.common import UserError

from ..config import AMP_MODES, ARCHS


def _int_list(ctx, param, value: str) -> list[int]:
    try:
        out = [int(v) for v in str(value).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers such as 8,32") from None
    if not out or any(v < 1 for v in out):
        raise click.BadParameter(f"{value!r}: needs one or more integers >= 1")
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{100.0 * x:6.2f}"


def _print_groups(title: str, tables: dict[str, dict]) -> None:
    """One column of accuracy per model: ``tables`` is ``{model: {group: {"accuracy", "n"}}}``."""
    models = list(tables)
    groups = list(dict.fromkeys(g for t in tables.values() for g in t))
    click.echo(f"\n{title}")
    click.echo(f"  {'group':<14} {'n':>6} " + " ".join(f"{m[:12]:>12}" for m in models))
    for g in groups:
        n = next((t[g].get("n") for t in tables.values() if g in t), 0)
        accs = " ".join(f"{_fmt((tables[m].get(g) or {}).get('accuracy')):>12}" for m in models)
        click.echo(f"  {g:<14} {n:>6} {accs}")


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.option("--data", "manifest", required=True, type=click.Path(exists=True, path_type=Path),
              help="OUT/manifest.csv (or OUT) written by `occsynth generate` (clean/occluded/mask pairs).")
@click.option("--split", default="test", show_default=True,
              help="Manifest split to score (the held-out occluded test split by default).")
@click.option("--by", "by", type=click.Choice(["category", "coverage", "class"]), multiple=True,
              help="Print accuracy tables: 'category' (occluder category and coverage bin), 'coverage', "
                   "'class'. Repeatable. The JSON always holds all of them.")
@click.option("--which", type=click.Choice(["student", "teacher"]), default="student", show_default=True,
              help="Which network of the checkpoint to score (the teacher is the clean-face network).")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="Input size in pixels (default: the checkpoint's training size).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Evaluation batch size.")
@click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--baseline", type=click.Path(exists=True, path_type=Path), default=None,
              help="A baseline to compare with (its checkpoint or run folder, scored on the same data, or its "
                   "evaluation.json): "
                   "side-by-side tables per occluder category and coverage bin, robustness.md and bar charts.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for evaluation.json, evaluation.md, confusion.png, reconstructions.png "
                   "(default: CHECKPOINT's folder / eval).")
def evaluate(checkpoint: Path, manifest: Path, split: str, by: tuple[str, ...], which: str,
             image_size: int | None, batch_size: int, num_workers: int, device: str,
             baseline: Path | None, out_dir: Path | None) -> None:
    """Score CHECKPOINT (a file, or a run folder: its best.pt / student.pt) on the occluded images of a split
    (clean ones for reference).

    Writes overall, per-class, per-occluder-category and per-coverage-bin accuracy with the
    confusion matrix to JSON and markdown, a confusion-matrix PNG, and a reconstruction grid
    when the checkpoint holds a decoder.
    """
    from ..checkpoint import resolve_checkpoint
    from ..evaluation import evaluate_checkpoint
    from ..report import baseline_results, write_evaluation, write_robustness

    checkpoint = resolve_checkpoint(checkpoint, which)

    out_dir = out_dir or checkpoint.parent / "eval"
    options = dict(split=split, image_size=image_size, batch_size=batch_size, num_workers=num_workers, device=device)
    result = evaluate_checkpoint(checkpoint, manifest, which=which, **options)
    written = write_evaluation(result, out_dir, title=f"{checkpoint} ({which}, {split})")
    clean = result.get("clean") or {}
    click.echo(f"{checkpoint} [{which}] split={split} n={result['n']}: occluded accuracy "
               f"{_fmt(result['accuracy']).strip()}%"
               + (f", clean accuracy {_fmt(clean.get('accuracy')).strip()}%" if clean else "")
               + (f", rec MSE {result['rec_mse']:.4f}" if "rec_mse" in result else ""))
    results = {"model": result}
    if baseline is not None:
        if baseline.is_dir():
            baseline = resolve_checkpoint(baseline)
        results = baseline_results(result, baseline, manifest, **options)
        write_robustness(results, out_dir, split=split)
    if "class" in by:
        _print_groups("per class", {m: r["per_class"] for m, r in results.items()})
    if "category" in by:
        _print_groups("per occluder category", {m: r.get("per_category", {}) for m, r in results.items()})
    if "category" in by or "coverage" in by:
        _print_groups("per coverage bin (occluded fraction of the face)",
                      {m: r.get("per_coverage_bin", {}) for m, r in results.items()})
    click.echo(f"wrote {written}")


class InputsFailed(click.ClickException):
    """Some inputs of `fer-pi predict` failed (each already named on stderr): exit status 1."""

    exit_code = 1


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True, path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--crop", type=click.Choice(["face", "none"]), default="face", show_default=True,
              help="face: find every face and crop it as `occsynth generate --crop face` does for training; "
                   "none: the whole image is one aligned face crop.")
@click.option("--face-crop/--no-face-crop", "face_crop", default=None, hidden=True,
              help="Deprecated: --crop face / --crop none.")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", "dlib", "mediapipe"]),
              help="Landmark backend that finds the faces for --crop face.")
@click.option("--margin", type=click.FloatRange(min=0.0, max=2.0), default=None,
              help="Crop margin around the landmarks, as a fraction of the face size on each side "
                   "[default: the training pairs' one, generate's 0.25].")
@click.option("--which", type=click.Choice(["student", "teacher"]), default="student", show_default=True,
              help="Which network of the checkpoint to use.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (predictions, failures, skipped).")
def predict(checkpoint: Path, images: tuple[Path, ...], crop: str, face_crop: bool | None, backend: str,
            margin: float | None, which: str, device: str, as_json: bool) -> None:
    """Predict the expression of every face in IMAGES (files or folders) with CHECKPOINT (a file or a run
    folder).

    Prints one row per face: file, face index (0 = largest), face box x0,y0,x1,y1, label and its
    probability. Each input that fails (missing, unreadable, no face) gets one line on stderr and
    the others go on; the exit status is then 1 (2 when no input could be predicted). Files in a
    folder that are not images are listed on stderr as skipped.
    """
    from ..checkpoint import resolve_checkpoint
    from ..predict import predict_paths

    checkpoint = resolve_checkpoint(checkpoint, which)
    if face_crop is not None:
        crop = "face" if face_crop else "none"
    result = predict_paths(checkpoint, images, which=which, device=device, crop=crop, backend=backend,
                           margin=margin)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo("\t".join(("file", "face", "box", "label", "probability")))
        for p in result.predictions:
            click.echo("\t".join((p.path, "-" if p.face is None else str(p.face), ",".join(map(str, p.box)),
                                  p.label_name, f"{p.probability:.3f}")))
    for s in result.skipped:
        click.echo(f"skipped: {s.path}: {s.reason}", err=True)
    for f in result.failures:
        click.echo(f"error: {f.path}: {f.reason}", err=True)
    if not result.predictions:
        raise UserError(f"no face could be predicted ({len(result.failures)} inputs failed)")
    if result.failures:
        raise InputsFailed(f"{len(result.failures)} input(s) failed, {len(result.predictions)} face(s) predicted")


@click.command()
@click.option("--arch", type=click.Choice(list(ARCHS)), default="resnet50",
              show_default=True, help="Backbone architecture (random weights; speed does not depend on them).")
@click.option("--image-size", type=click.IntRange(min=16), default=224, show_default=True,
              help="Square input size in pixels (paper: 224 for AffectNet, 88 for RAF-DB).")
@click.option("--batch-sizes", default="8,32", show_default=True, callback=_int_list,
              help="Comma-separated batch sizes to time.")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed steps per measurement (after the warm-up).")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True,
              help="Untimed warm-up steps per measurement.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp", type=click.Choice(list(AMP_MODES)), default="off", show_default=True,
              help="Mixed precision (fp16 needs CUDA).")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True,
              help="Use the channels_last memory format on CUDA.")
@click.option("--mode", type=click.Choice(["both", "train", "infer"]), default="both", show_default=True,
              help="Time the full fine-tune step, inference, or both.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="torch CPU threads (0: torch's default). On a shared machine 1 can beat a contended 2.")
@click.option("--out", "out_json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the measurements to this JSON file.")
def bench(arch: str, image_size: int, batch_sizes: list[int], steps: int, warmup: int, device: str,
          amp: str, channels_last: bool, mode: str, threads: int, out_json: Path | None) -> None:
    """Time training pairs/s (a full fine-tune step) and inference images/s.

    A training step is one discriminator step plus one student step of Algorithm 1 with every
    loss on: frozen-teacher forward, student forward/backward, decoder, discriminator.
    """
    from ..evaluation import run_benchmark

    report = run_benchmark(arch=arch, image_size=image_size, batch_sizes=batch_sizes, steps=steps,
                           warmup=warmup, device=device, amp=amp, channels_last=channels_last, mode=mode,
                           threads=threads)
    click.echo(f"device: {report['device']} ({report['device_name']}), arch {arch}, {image_size} px, amp {amp}, "
               f"torch {report['torch']}, {report['threads']} threads")
    click.echo(f"  {'batch':>5}  {'train pairs/s':>14}  {'infer images/s':>15}")
    for row in report["results"]:
        tr = row.get("train_pairs_per_s")
        inf = row.get("infer_images_per_s")
        click.echo(f"  {row['batch_size']:>5}  {'-' if tr is None else f'{tr:.2f}':>14}  "
                   f"{'-' if inf is None else f'{inf:.2f}':>15}")
    if out_json is not None:
        from occlusion_synth.io import atomic_write_bytes

        out_json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out_json, (json.dumps(report, indent=2) + "\n").encode())
        click.echo(f"wrote {out_json}")
