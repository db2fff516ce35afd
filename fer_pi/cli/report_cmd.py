"""``fer-pi report``: a markdown report comparing evaluated runs (baseline first), with pictures."""
from __future__ import annotations

from pathlib import Path

import click


def _names(ctx, param, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("needs at least one name")
    return names


@click.command("report")
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder holding evaluated run sub-folders (see --runs), as `make demo` writes runs/demo; "
                   "instead of RUNS.")
@click.option("--runs", "sub_runs", default="resnet,full", show_default=True, callback=_names,
              help="With --run-dir: comma-separated run sub-folders, baseline first.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown file to write (default with --run-dir: RUN_DIR/report.md; required with RUNS).")
@click.option("--pairs", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="`occsynth generate` output folder for a picture of example pairs (default with --run-dir: "
                   "the data of the first run's config.json).")
@click.option("--names", default=None, callback=_names,
              help="Comma-separated display names, one per run (default: each run's preset).")
def report(runs: tuple[Path, ...], run_dir: Path | None, sub_runs: list[str], out: Path | None,
           pairs: Path | None, names: list[str] | None) -> None:
    """Write a markdown report comparing evaluated runs (RUNS, baseline first).

    Each run must have been scored with `fer-pi evaluate CKPT --out RUN/eval`. The report holds
    the accuracy table, per-category and per-coverage tables with bar charts, training curves,
    confusion matrices and reconstructions, linked by relative paths.
    """
    from ..report import demo_report, write_demo_report

    if run_dir is not None:
        if runs:
            raise click.UsageError("give RUNS or --run-dir, not both")
        path = demo_report(run_dir, out, runs=sub_runs, pairs_dir=pairs)
    else:
        if not runs:
            raise click.UsageError("give the evaluated run folders (RUNS) or --run-dir")
        if out is None:
            raise click.UsageError("--out is required with RUNS")
        if names is not None and len(names) != len(runs):
            raise click.BadParameter(f"{len(names)} names for {len(runs)} runs", param_hint="--names")
        path = write_demo_report(runs, out, pairs_dir=pairs, names=names)
    click.echo(f"wrote {path}")
