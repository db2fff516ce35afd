"""``occsynth demo-data OUT``: build the embedded demo expression dataset (RAF-DB layout)."""
from __future__ import annotations

import click


@click.command("demo-data")
@click.argument("out", type=click.Path(file_okay=False, writable=True))
@click.option("--per-class", type=click.IntRange(min=1), default=60, show_default=True,
              help="Training faces per expression class (7 classes).")
@click.option("--test-per-class", type=click.IntRange(min=0), default=50, show_default=True,
              help="Test faces per class (rendered from the held-out photo and, with new random "
                   "draws, the single-photo identities).")
@click.option("--size", type=click.IntRange(32, 512), default=100, show_default=True,
              help="Side of the square aligned face images in pixels (RAF-DB aligned is 100).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Global seed: the same seed and options give byte-identical files.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Cache folder for the source photos (fetched through pip on first use) and "
                   "their landmarks. Default: $OCCSYNTH_CACHE or ./.cache.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists and is not empty.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def demo_data(out, per_class, test_per_class, size, seed, cache_dir, overwrite, quiet):
    """Build a small 7-class facial-expression dataset in OUT, with no data download.

    Real public-domain face photos (NASA's Eileen Collins, official Obama and Biden portraits,
    shipped inside pip packages) are warped into neutral, happiness, sadness, surprise, fear,
    disgust and anger by landmark-driven thin-plate-spline warps, then varied in pose, colour,
    lighting, blur, noise and JPEG quality. OUT has the exact RAF-DB "basic" layout
    (Image/aligned/train_00001_aligned.jpg, EmoLabel/list_patition_label.txt), so
    `occsynth generate --src rafdb --root OUT` reads it, plus demo_info.json (photo origins and
    licences, options, counts, train/test photos) and demo_landmarks.json.
    """
    from tqdm import tqdm

    from ..demodata import build_demo_dataset

    total = 7 * (per_class + test_per_class)
    # delay: no bar flashes up when the build is refused at once (e.g. OUT exists)
    with tqdm(total=total, unit="face", desc="demo-data", disable=quiet, delay=0.5) as bar:
        info = build_demo_dataset(out, per_class=per_class, test_per_class=test_per_class, size=size,
                                  seed=seed, cache_dir=cache_dir, overwrite=overwrite, progress=bar.update)
    n_train = sum(info["counts"]["train"].values())
    n_test = sum(info["counts"]["test"].values())
    click.echo(f"demo-data: wrote {n_train} train + {n_test} test faces ({size}x{size}, 7 classes, "
               f"seed {seed}) to {out} in RAF-DB layout")
