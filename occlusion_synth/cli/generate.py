"""``occsynth generate`` (a dataset -> paired clean/occluded/mask files) and ``occsynth merge``."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from ..pairs.config import CROP_MODES, DEFAULT_SHARD_SIZE, EXECUTORS, FACE_MODES, FORMATS, LANDMARK_MODES, SPLITS
from ..placement import REGIONS
from ..sources import READER_NAMES
from .common import CATEGORY_CHOICES, UserError, coverage_option, parse_categories

# PairsConfig argument -> the flag that sets it (library messages name arguments)
FLAGS = {"coverage_range": "--coverage", "landmark_options": "--landmark-option", "reader_options": "--reader-option",
         "format": "--format", "overwrite": "--overwrite", "out": "--out", "output": "--format"}
WEBDATASET = "webdataset"  # --format value: tar shards (PNG members) instead of a folder of files
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2, "g": 1024 ** 3, "gb": 1024 ** 3}


def flag_of(argument: str) -> str:
    """The command-line flag of a :class:`PairsConfig` argument."""
    return FLAGS.get(argument, "--" + argument.replace("_", "-"))


def _byte_size(ctx, param, value):
    text = str(value).strip().lower()
    num = text.rstrip("kmgb")
    try:
        n = int(float(num) * _SIZE_UNITS[text[len(num):]])
    except (ValueError, KeyError, OverflowError):
        raise click.BadParameter(f"expected a size such as 256MB, 2GB or 1048576, got {value!r}") from None
    if n < 1:
        raise click.BadParameter(f"must be at least 1 byte, got {value!r}")
    return n



def _shard(ctx, param, value):
    try:
        i, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected i/n (0-based shard i of n, e.g. 0/4), got {value!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise click.BadParameter(f"expected 0 <= i < n, got {value!r}")
    return i, n


def _splits(ctx, param, value):
    if value is None:
        return None
    splits = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise click.BadParameter(f"unknown splits {bad}; choose from {','.join(SPLITS)}")
    return splits


def _parse_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _key_values(ctx, param, values):
    out = {}
    for item in values:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        out[key.replace("-", "_")] = _parse_value(value)
    return out


def _command() -> str:
    argv = sys.argv[1:] if os.path.basename(sys.argv[0]).startswith("occsynth") else []
    ctx = click.get_current_context()
    return "occsynth " + (shlex.join(argv) if argv else ctx.info_name + " ...")


@click.command()
@click.option("--src", required=True, type=click.Choice(READER_NAMES), help="Dataset reader.")
@click.option("--root", required=True, type=click.Path(file_okay=False),
              help="Dataset root folder (layout: docs/datasets.md); --src demo builds it if missing.")
@click.option("--templates", type=click.Path(exists=True), default=None,
              help="Template folder (default: the shipped assets/).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--categories", default=",".join(CATEGORY_CHOICES), show_default=True, callback=parse_categories,
              help="Comma-separated occluder categories.")
@click.option("--per-image", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Occluded variants per image (ids get _k0, _k1, ...; the clean file is shared).")
@click.option("--landmarks", default="auto", show_default=True,
              type=click.Choice(LANDMARK_MODES),
              help="auto = the dataset's landmarks when it has them, else detection; cached = the "
                   "landmarks saved by an earlier run (--landmark-cache), detection for the rest.")
@click.option("--landmark-cache", default=None, type=click.Path(exists=True, file_okay=False),
              help="Output folder of an earlier generate run whose landmarks.jsonl --landmarks cached reuses.")
@click.option("--landmark-option", "landmark_option", multiple=True, callback=_key_values,
              help="Landmark backend option KEY=VALUE (repeatable), e.g. refine=0 for a faster aligned, "
                   "cascade_depth=15 for dlib's whole predictor (aligned runs its first 10 of 15 levels), "
                   "engine=dlib for dlib's own predictor code (integer points) instead of the compact engine.")
@click.option("--region", default="auto", show_default=True, type=click.Choice(REGIONS),
              help="Where occluders go: auto = each category's own rule (masks on the lower face, "
                   "food and drinks at the mouth, hands anywhere plausible), or one face region for all.")
@click.option("--coverage", default=None, callback=coverage_option,
              help="Accepted occluded fraction of the face, A-B (default: Occlude's 0.01-0.9).")
@click.option("--size", default=None, type=click.IntRange(24, 4096), help="Output side in pixels.")
@click.option("--crop", default="auto", show_default=True, type=click.Choice(CROP_MODES),
              help="face = square crop around the landmarks; auto = face for affectnet, ckplus, rafdb original.")
@click.option("--faces", default="largest", show_default=True, type=click.Choice(FACE_MODES),
              help="largest = occlude the largest face; all = every detected face gets its own occluder.")
@click.option("--val-fraction", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Move this seeded, stratified fraction of train to val (by identity where known).")
@click.option("--holdout-templates", default=0.0, show_default=True,
              type=click.FloatRange(0.0, 1.0, max_open=True),
              help="Hold out this seeded fraction of each category's templates: train/val pairs use the "
                   "others; half the test pairs use held-out (unseen) templates, half seen ones.")
@click.option("--max-file-size", default="256MB", show_default=True, callback=_byte_size,
              help="Larger source files are skipped before reading (e.g. 64MB, 1GB).")
@click.option("--splits", default=None, callback=_splits, help="Comma-separated: train,val,test.")
@click.option("--limit", default=None, type=click.IntRange(0), help="First N samples of the source.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0),
              help="Global seed; each pair's randomness comes from (seed, sample id) only.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes (output bytes do not depend on it).")
@click.option("--shard", default="0/1", show_default=True, callback=_shard,
              help="Process shard i of n (0-based); merge the shard outputs with `occsynth merge`.")
@click.option("--resume/--overwrite", default=True, show_default=True,
              help="Resume a previous run in --out (skip complete pairs) or delete it first.")
@click.option("--format", "fmt", default="png", show_default=True, type=click.Choice(FORMATS + (WEBDATASET,)),
              help="Clean/occluded image format (masks are always PNG; a clean image that is not "
                   "cropped or resized keeps the source file's bytes and format); webdataset = tar "
                   "shards of PNG pairs plus index.json in --out instead of a folder of files.")
@click.option("--shard-size", default=DEFAULT_SHARD_SIZE, show_default=True, type=click.IntRange(1),
              help="--format webdataset: pairs per tar shard (the last shard of a split holds the rest).")
@click.option("--executor", default="local", show_default=True, type=click.Choice(EXECUTORS),
              help="local = --workers processes on this machine; ray = --workers Ray actors (one CPU "
                   "each) on the cluster of --ray-address; the output bytes are the same.")
@click.option("--ray-address", default=None,
              help="--executor ray: auto (the running cluster, e.g. after `ray start --head`) or "
                   "HOST:PORT; default: start a local Ray for this run.")
@click.option("--variant", default=None, type=click.Choice(["aligned", "original"]),
              help="rafdb: Image/aligned (default) or Image/original.")
@click.option("--label-map", default=None, help="folder: FOLDER=CLASS,... or a JSON file.")
@click.option("--include-contempt/--no-include-contempt", default=None,
              help="affectnet, ferplus, ckplus: keep contempt (canonical 7).")
@click.option("--include-neutral/--no-include-neutral", default=None,
              help="ckplus: first frame of each labelled sequence as neutral (default on).")
@click.option("--fold", default=None, type=click.IntRange(0), help="ckplus: test fold (default 0).")
@click.option("--folds", default=None, type=click.IntRange(2), help="ckplus: number of folds (default 10).")
@click.option("-O", "--reader-option", "reader_option", multiple=True, callback=_key_values,
              help="Any other reader option, KEY=VALUE (repeatable).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar with pairs/s on stderr.")
def generate(src, root, templates, out, categories, per_image, landmarks, landmark_cache, landmark_option, region,
             coverage, size, crop, faces, val_fraction, holdout_templates, max_file_size, splits, limit, seed, workers,
             shard, resume, fmt, shard_size, executor, ray_address, variant, label_map, include_contempt, include_neutral,
             fold, folds, reader_option, progress):
    """Turn a face-expression dataset into clean/occluded/mask pairs with a manifest.

    Writes OUT/{clean,occluded,mask}/{split}/{class}/{id}.png, OUT/manifest.csv, OUT/skipped.csv,
    OUT/landmarks.jsonl and OUT/dataset.json (--format webdataset: tar shards and index.json instead
    of the image folders and manifest.csv). Re-running the same command resumes; output bytes
    depend only on the inputs, the options and --seed (not on --workers, --shard or interruptions).
    """
    from ..pairs import ConfigError, PairsConfig, generate_pairs

    reader_options = dict(reader_option)
    for key, value in (("variant", variant), ("label_map", label_map), ("include_contempt", include_contempt),
                       ("include_neutral", include_neutral), ("fold", fold), ("folds", folds)):
        if value is not None:
            reader_options[key] = value
    try:
        cfg = PairsConfig(src=src, root=root, out=out, templates=templates, categories=categories,
                          per_image=per_image, landmarks=landmarks, landmark_cache=landmark_cache, region=region,
                          coverage_range=coverage, size=size, crop=crop, faces=faces, val_fraction=val_fraction,
                          holdout_templates=holdout_templates,
                          max_file_size=max_file_size, splits=splits, limit=limit, seed=seed, workers=workers,
                          shard=shard, overwrite=not resume, reader_options=reader_options,
                          landmark_options=dict(landmark_option), progress=progress, executor=executor,
                          ray_address=ray_address, shard_size=shard_size,
                          **({"format": "png", "output": WEBDATASET} if fmt == WEBDATASET else {"format": fmt}))
    except ConfigError as exc:
        raise click.BadParameter(exc.message, param_hint=flag_of(exc.argument)) from None
    summary = run_library(generate_pairs, cfg, command=_command())
    _report(summary)


def run_library(fn, *args, **kwargs):
    """Call the library; its argument names in a one-line error become this command's flags."""
    from ..errors import OcclusionSynthError

    try:
        return fn(*args, **kwargs)
    except OcclusionSynthError as exc:
        msg = str(exc)
        head, sep, rest = msg.partition(": ")
        if sep and head.isidentifier():
            if head == "reader_options" and "'" in rest:  # name the reader option's own flag
                key = rest.split("'")[1]
                msg = f"--{key.replace('_', '-')}: {rest}"
            elif head == "shards":
                msg = f"SHARDS: {rest}"
            else:
                msg = f"{flag_of(head)}: {rest}"
        raise UserError(msg) from None


def _report(summary) -> None:
    c = summary.counts
    click.echo(f"generated {summary.new_pairs} pairs from {summary.new_samples} images in "
               f"{summary.seconds:.1f} s ({summary.pairs_per_second:.1f} pairs/s); "
               f"{summary.resumed_samples} images already done (resumed)")
    if summary.skipped_by_reason:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(summary.skipped_by_reason.items(), key=lambda kv: -kv[1]))
        click.echo(f"skipped {summary.new_skipped} this run: {parts}")
    if summary.internal_errors:
        click.echo(f"warning: {summary.internal_errors} internal errors (see skipped.csv); please report them",
                   err=True)
    if summary.stage_seconds:
        total = sum(summary.stage_seconds.values()) or 1.0
        click.echo("time per stage: " + ", ".join(f"{k} {100 * v / total:.0f}%"
                                                  for k, v in summary.stage_seconds.items()))
    index = "manifest.csv" if (Path(summary.out) / "manifest.csv").is_file() else "tar shards, index.json"
    click.echo(f"{summary.out}: {c.get('pairs', 0)} pairs ({c.get('clean_images', 0)} clean images), "
               f"{c.get('skipped', 0)} skipped; {index}, skipped.csv, dataset.json")


@click.command()
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Merged output folder.")
def merge(shards, out):
    """Merge the outputs of `occsynth generate --shard i/n` runs into one output folder.

    The result has the same files, manifest.csv and skipped.csv as one unsharded run.
    """
    from ..pairs import merge_pairs

    summary = run_library(merge_pairs, shards, out, command=_command())
    c = summary.counts
    click.echo(f"merged {len(shards)} shards into {Path(out)}: {c.get('pairs', 0)} pairs, "
               f"{c.get('skipped', 0)} skipped")
