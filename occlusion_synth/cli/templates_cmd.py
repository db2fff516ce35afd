"""``occsynth templates build|list|validate|import``: thin wrappers over :mod:`occlusion_synth.templates`."""
from __future__ import annotations

from pathlib import Path

import click

from ..templates import CATEGORIES
from .common import UserError


@click.group()
def templates() -> None:
    """Occluder template libraries: regenerate the shipped set, list, validate and import photos."""


@templates.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("assets"),
              show_default=True, help="Library root to write (<out>/<category>/<name>.png + .json).")
@click.option("--category", "categories", multiple=True, type=click.Choice(CATEGORIES),
              help="Build only this category (repeatable; default: all).")
@click.option("--openclipart", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The openclipart png/ folder (default: $OCCSYNTH_OPENCLIPART or /usr/share/openclipart/png).")
@click.option("--emoji", is_flag=True,
              help="Also render the Noto Color Emoji food, drink and hand templates (emoji_<name>).")
@click.option("--font", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Noto Color Emoji font file for --emoji (default: $OCCSYNTH_EMOJI_FONT or the system copy).")
def build(out: Path, categories: tuple[str, ...], openclipart: Path | None, emoji: bool, font: Path | None) -> None:
    """Regenerate the template library deterministically (same bytes every run on one machine).

    Masks, hands and the rendered drinks are drawn by the project's code; food and the clip-art
    drinks come from Debian's public-domain openclipart-png package and are skipped, with a
    message, when it is not installed (shipped files of a skipped source are left alone).
    """
    from ..templates.build import build_library

    report = build_library(out, font=font, categories=categories or CATEGORIES, clipart=openclipart,
                           emoji=emoji)
    for category, names in report.built.items():
        click.echo(f"{category}: {len(names)} templates")
    for category, reason in report.skipped.items():
        click.echo(f"skipped {category}: {reason}", err=True)
    if report.count == 0:
        raise UserError(f"nothing was built into {out} (skipped: {', '.join(report.skipped)})")
    font_note = f" (emoji font {report.font})" if report.font else ""
    click.echo(f"wrote {report.count} templates to {out}{font_note}")


@templates.command("list")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
def list_templates(path: Path | None) -> None:
    """List the templates of PATH (default: the shipped library) by category."""
    from ..templates import load_templates

    lib = load_templates(path)
    for category in lib.categories():
        names = [t.name.split("/", 1)[1] for t in lib.by_category(category)]
        click.echo(f"{category} ({len(names)}): {', '.join(names)}")
    click.echo(f"{len(lib)} templates")


@templates.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.pass_context
def validate(ctx: click.Context, path: Path) -> None:
    """Check every template under PATH; print each problem with its reason.

    Exit status 1 when any error is found (warnings alone exit 0).
    """
    from ..templates import validate_templates

    problems = validate_templates(path)
    for problem in problems:
        click.echo(str(problem))
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    click.echo(f"{path}: {errors} error(s), {warnings} warning(s)")
    if errors:
        ctx.exit(1)


@templates.command("import")
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--category", required=True, type=click.Choice(CATEGORIES),
              help="Category of the imported templates (decides which anchors are guessed).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("my_templates"),
              show_default=True, help="Library root: templates go to <out>/<category>/<name>.png + .json.")
@click.option("--name", default=None,
              help="File name stem of the template (one photo only; default: the photo's stem).")
@click.option("--max-size", type=click.IntRange(16, 4096), default=256, show_default=True,
              help="Longer side of the template in pixels (larger cut-outs are shrunk).")
@click.option("--licence", default="unknown", show_default=True,
              help="Licence of the photos, recorded in each sidecar (e.g. CC0-1.0, CC-BY-4.0).")
@click.option("--force", is_flag=True, help="Replace templates of the same name (default: refuse).")
def import_cmd(photos: tuple[Path, ...], category: str, out: Path, name: str | None, max_size: int,
               licence: str, force: bool) -> None:
    """Turn PHOTOS of occluders into validated templates.

    A PNG with an alpha channel keeps it; any other photo is cut out of its plain background
    (OpenCV GrabCut started from the border colours). Anchors are guessed from the cut-out
    (hand: wrist and grip; drink: rim and grip; food: grip; mask: landmark anchors from its box),
    written to the sidecar JSON, and printed. Each template is validated before it is written.
    """
    from ..errors import TemplateError
    from ..templates.importer import describe_result, import_photo

    if name is not None and len(photos) > 1:
        raise UserError(f"--name {name}: give one photo only ({len(photos)} given)")
    failed = 0
    for photo in photos:
        try:
            result = import_photo(photo, category, out, name=name, max_size=max_size, overwrite=force,
                                  licence=licence)
        except TemplateError as exc:
            if len(photos) == 1:
                raise UserError(str(exc)) from None
            click.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        click.echo(describe_result(result))
    if failed:
        raise UserError(f"{failed} of {len(photos)} photos not imported (see the errors above)")
    click.echo(f"imported {len(photos)} template(s) into {out / category}; check them with "
               f"`occsynth templates validate {out}`")
