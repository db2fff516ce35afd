"""``occsynth preview``: a contact sheet of original / occluded / mask rows."""
from __future__ import annotations

from pathlib import Path

import click

from ..landmarks import BACKENDS
from ..pairs.config import FACE_MODES
from ..placement import REGIONS
from .common import CATEGORY_CHOICES, coverage_option, parse_categories


@click.command()
@click.option("--templates", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Template folder (default: the shipped assets/).")
@click.option("--src", required=True, type=click.Path(exists=True, path_type=Path),
              help="A face image or a folder of images.")
@click.option("-n", "num", default=16, show_default=True, type=click.IntRange(1, 512),
              help="Number of samples (one column each).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output PNG.")
@click.option("--categories", default=",".join(CATEGORY_CHOICES), show_default=True, callback=parse_categories,
              help="Comma-separated occluder categories.")
@click.option("--region", default="auto", show_default=True,
              type=click.Choice(REGIONS),
              help="Where non-mask occluders go (auto = each category's default regions).")
@click.option("--coverage", default=None, callback=coverage_option,
              help="Accepted occluded fraction of the face, A-B (default: Occlude's 0.01-0.9).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Random seed; sample i uses numpy default_rng([seed, i]).")
@click.option("--size", default=224, show_default=True, type=click.IntRange(32, 1024),
              help="Face crop (tile) size in pixels.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice([b for b in BACKENDS if b != "provided"]), help="Landmark backend.")
@click.option("--faces", default="largest", show_default=True, type=click.Choice(FACE_MODES),
              help="largest = one tile per image; all = one tile per detected face.")
@click.option("--shadow/--no-shadow", default=False, show_default=True,
              help="Draw a soft drop shadow under the occluders.")
@click.option("--columns", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Samples per band before the sheet wraps.")
@click.option("--palette", is_flag=True, help="Save a dithered 256-colour PNG (about 3x smaller; for docs).")
def preview(templates, src, num, out, categories, region, coverage, seed, size, backend, faces, shadow, columns,
            palette):
    """Write a contact sheet (original / occluded / mask rows) to judge occluders by eye.

    Images that cannot be read or show no face are reported on stderr and left out.
    """
    from ..io import write_image
    from ..preview import list_images, make_preview
    from ..transforms import DEFAULT_COVERAGE, Occlude

    from PIL import Image

    try:
        occ = Occlude(templates=templates, categories=categories, region=region,
                      coverage_range=coverage or DEFAULT_COVERAGE, shadow=shadow)
    except Image.DecompressionBombError as exc:
        raise click.BadParameter(f"a template image is too large to decode ({exc})",
                                 param_hint="--templates") from None
    problems: list[str] = []

    def report(message: str) -> None:
        problems.append(message)
        click.echo(f"skipped: {message}", err=True)

    sheet = make_preview(list_images(src), occ, n=num, size=size, seed=seed, backend=backend,
                         columns=columns, faces=faces, on_error=report)
    if palette:
        import io

        from PIL import Image

        from ..io import atomic_write_bytes

        quantized = Image.fromarray(sheet).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                     dither=Image.Dither.FLOYDSTEINBERG)
        buf = io.BytesIO()
        quantized.save(buf, format="PNG", optimize=True)
        atomic_write_bytes(out, buf.getvalue())
    else:
        write_image(out, sheet)
    click.echo(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]}, {num} samples"
               f"{f'; {len(problems)} image(s) skipped' if problems else ''})")
