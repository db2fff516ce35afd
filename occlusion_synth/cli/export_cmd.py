"""``occsynth export``: convert a generated folder to WebDataset tar shards, and back."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("export")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "to", type=click.Choice(["webdataset", "folder"]), required=True,
              help="webdataset: SRC is an `occsynth generate` folder, write tar shards; "
                   "folder: SRC is a shard folder, write the folder layout and manifest.csv back.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write (must be new or empty, unless --resume).")
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples (pairs) per tar shard; the last shard of each split holds the rest.")
@click.option("--resume", is_flag=True, default=False,
              help="--to webdataset: continue a killed export in --dest, rewriting only unfinished shards.")
def export(src: Path, to: str, dest: Path, shard_size: int, resume: bool) -> None:
    """Convert SRC between the folder layout and WebDataset shards.

    Shards are DEST/{split}-{n:06d}.tar with {key}.clean.png, {key}.occluded.png,
    {key}.mask.png and {key}.json per pair, plus DEST/index.json (shards and counts per split).
    Identical inputs give byte-identical shards.
    """
    from ..shards import folder_to_shards, shards_to_folder

    if to == "webdataset":
        index = folder_to_shards(src, dest, shard_size, resume=resume)
        n_shards = sum(len(s["shards"]) for s in index["splits"].values())
        counts = ", ".join(f"{k} {v['count']}" for k, v in index["splits"].items())
        click.echo(f"wrote {n_shards} shard(s) ({counts}) -> {dest / 'index.json'}")
    else:
        if resume:
            raise click.UsageError("--resume applies to --to webdataset only")
        n = shards_to_folder(src, dest)
        click.echo(f"wrote {n} pair(s) -> {dest / 'manifest.csv'}")
