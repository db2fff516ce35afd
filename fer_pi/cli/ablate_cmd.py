"""``fer-pi ablate``: the paper's eight Table-1 rows from one shared pre-training per seed."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..config import ARCHS, METHOD_PRESETS, SIZE_PRESETS

PRESET_NAMES = tuple(METHOD_PRESETS)


def _csv_ints(ctx, param, value):
    if value is None:
        return None
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated integers such as 0,1,2") from None
    if not out and param.name != "pair_seeds":
        raise click.BadParameter("needs at least one seed")
    return out


def _csv_presets(ctx, param, value):
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in PRESET_NAMES]
    if bad or not names:
        raise click.BadParameter(f"unknown preset(s) {', '.join(bad) or '(none)'}; valid: {', '.join(PRESET_NAMES)}")
    return names


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/ablation"),
              show_default=True, help="Ablation folder: runs, results.csv, results.md, robustness charts.")
@click.option("--data", "manifest", type=click.Path(exists=True, path_type=Path), default=None,
              help="OUT/manifest.csv (or OUT) of `occsynth generate` (train and test splits). Without it the demo "
                   "data is built and paired under OUT/data.")
@click.option("--demo", is_flag=True, help="Build the embedded demo data and generate pairs (the default when "
                                           "--data is not given).")
@click.option("--seeds", default=None, callback=_csv_ints,
              help="Comma-separated seeds; each repeats pre-training and all presets [default: 0,1,2; 0 with --quick].")
@click.option("--pair-seeds", default=None, callback=_csv_ints,
              help="Further seeds on which only resnet and full run (baseline-vs-full over more seeds) "
                   "[default: 3,4; none with --quick].")
@click.option("--presets", default=",".join(PRESET_NAMES), show_default=True, callback=_csv_presets,
              help="Comma-separated Table-1 presets to fine-tune (resnet is the baseline).")
@click.option("--report-only", is_flag=True,
              help="Train nothing: rebuild results.csv/results.md from the runs already evaluated in --out.")
@click.option("--quick", is_flag=True,
              help="CI-sized pipeline check: tiny net, 32 px, one epoch per phase, one seed.")
@click.option("--size-preset", "--size", "size_preset", type=click.Choice(list(SIZE_PRESETS)),
              default="demo", show_default=True,
              help="Architecture / resolution / schedule preset, as in `fer-pi train` (--size is its older name).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Fine-tuning epochs per preset.")
@click.option("--pretrain-epochs", type=click.IntRange(min=1), default=None, help="Pre-training epochs per seed.")
@click.option("--arch", type=click.Choice(list(ARCHS)), default=None,
              help="Override the size preset's architecture.")
@click.option("--image-size", type=click.IntRange(min=16), default=None, help="Override the input size.")
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
              help="Any config field, e.g. --set lambda_adv=0.1 (repeatable; same for every preset).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Seeds trained at the same time, one process each (2 on a 2-core CPU: the demo "
                   "preset trains with one torch thread).")
def ablate(out_dir: Path, manifest: Path | None, demo: bool, seeds: list[int] | None,
           pair_seeds: list[int] | None, presets: list[str], report_only: bool,
           quick: bool, size_preset: str, epochs: int | None, pretrain_epochs: int | None, arch: str | None,
           image_size: int | None, set_items: tuple[str, ...], device: str, jobs: int) -> None:
    """Run the paper's ablation (Table 1) and write the comparison table.

    Per seed: pre-train teacher and student once, fine-tune each preset from that shared
    pre-training, evaluate every fine-tuned student (final epoch) on the held-out occluded test
    split. Writes OUT/results.csv, OUT/results.md (mean and std over seeds next to the paper's
    RAF-DB figures), per-category/coverage tables and bar charts (baseline vs full).
    """
    from ..ablation import build_demo_pairs, run_ablation
    from ..utils import setup_logging

    setup_logging()
    if manifest is not None and demo:
        raise click.UsageError("give either --data MANIFEST or --demo, not both")
    seeds = seeds if seeds is not None else ([0] if quick else [0, 1, 2])
    pair_seeds = pair_seeds if pair_seeds is not None else ([] if quick else [3, 4])
    manifest_given = manifest is not None
    if manifest is None:
        manifest = build_demo_pairs(out_dir / "data", seed=0, quick=quick, log=click.echo)
    overrides = {k: v for k, v in (("epochs", epochs), ("pretrain_epochs", pretrain_epochs), ("arch", arch),
                                   ("image_size", image_size)) if v is not None}
    # the command as it takes effect (resolved defaults), recorded in results.md
    parts = ["--out", str(out_dir), "--data" if not demo and manifest_given else "--demo"]
    parts += [str(manifest)] if not demo and manifest_given else []
    parts += ["--seeds", ",".join(map(str, seeds)), "--pair-seeds", ",".join(map(str, pair_seeds)), "--presets", ",".join(presets), "--size-preset", size_preset]
    parts += ["--quick"] if quick else []
    parts += ["--report-only"] if report_only else []
    parts += ["--jobs", str(jobs)] if jobs > 1 else []
    for flag, value in (("--epochs", epochs), ("--pretrain-epochs", pretrain_epochs), ("--arch", arch),
                        ("--image-size", image_size)):
        parts += [flag, str(value)] if value is not None else []
    for item in set_items:
        parts += ["--set", item]
    command = "fer-pi ablate " + shlex.join(parts)
    result = run_ablation(out_dir, manifest, seeds=seeds, presets=presets, size_preset=size_preset, quick=quick,
                          pair_seeds=pair_seeds, report_only=report_only, overrides=overrides, set_items=set_items, device=device, command=command,
                          log=click.echo, jobs=jobs)
    click.echo("")
    click.echo(f"{'preset':8s} {'occluded acc %':>15s} {'std':>6s} {'seeds':>5s}")
    for s in result["summary"]:
        std = "n/a" if s["std"] != s["std"] else f"{s['std']:.2f}"
        click.echo(f"{s['preset']:8s} {s['mean']:15.2f} {std:>6s} {s['n']:5d}")
    click.echo(f"wrote {result['results_csv']} and {result['results_md']} ({result['wall_s'] / 60:.1f} min)")
