"""``occsynth landmarks``: run a landmark backend on photos, print/save/draw the 68 points."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from ..errors import OcclusionSynthError
from ..landmarks import BACKENDS
from .common import UserError

# colours per iBUG group for --draw (RGB)
_COLOURS = {"jaw": (255, 255, 0), "brows": (255, 128, 0), "nose": (0, 255, 255),
            "eyes": (0, 255, 0), "mouth": (255, 0, 255)}


def _draw(image, faces):
    import cv2

    from ..landmarks.schemes import GROUPS

    out = image.copy()
    h, w = out.shape[:2]
    radius = max(1, round(max(h, w) / 250))
    for face in faces:
        x0, y0, x1, y1 = (int(round(float(v))) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 0, 0), radius)
        for group, colour in _COLOURS.items():
            for i in GROUPS[group]:
                x, y = face.landmarks[i]
                cv2.circle(out, (int(round(float(x))), int(round(float(y)))), radius, colour, -1,
                           lineType=cv2.LINE_AA)
    return out


def _face_dict(face) -> dict:
    return {"backend": face.backend, "score": round(float(face.score), 4),
            "box": [round(float(v), 2) for v in face.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks]}


@click.command("landmarks")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--backend", type=click.Choice(BACKENDS),
              default="auto", show_default=True, help="Landmark backend.")
@click.option("--provided", "provided", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Landmark file (.csv or .json, 68 points) for the one IMAGE; implies --backend provided.")
@click.option("--all-faces", is_flag=True, help="Report every face, not only the largest.")
@click.option("--upsample", type=click.IntRange(0, 4), default=1, show_default=True,
              help="dlib: times the image is upsampled before detection.")
@click.option("--cnn", is_flag=True, help="dlib: use the CNN (mmod) detector (slow on CPU).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write all results to this JSON file.")
@click.option("--draw", "draw_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each image with its landmarks drawn to DIR/<stem>_landmarks.png.")
def landmarks(images: tuple[Path, ...], backend: str, provided: Optional[Path], all_faces: bool,
              upsample: int, cnn: bool, json_out: Optional[Path], draw_dir: Optional[Path]) -> None:
    """Find faces and their 68 landmarks in IMAGE... (files or folders) and print one line per face.

    Useful to check that a photo or dataset works with a backend before generating. Images that
    cannot be read or have no face are reported, the others go on, and the command exits with
    status 2 at the end.
    """
    from ..io import atomic_write_bytes, read_image, write_image
    from ..landmarks import detect
    from ..landmarks.schemes import inter_ocular_distance

    if provided is not None:
        if len(images) != 1:
            raise click.BadParameter("--provided needs exactly one IMAGE", param_hint="--provided")
        backend = "provided" if backend in ("auto", "provided") else backend
        if backend != "provided":
            raise click.BadParameter(f"--provided cannot be used with --backend {backend}",
                                     param_hint="--provided")
    elif backend == "provided":
        raise click.BadParameter("--backend provided needs --provided FILE", param_hint="--backend")
    options = {"upsample": upsample, "cnn": cnn} if backend in ("auto", "dlib") else {}

    from ..preview import list_images

    paths: list[Path] = []
    for item in images:
        try:
            paths += list_images(item) if item.is_dir() else [item]
        except OcclusionSynthError as exc:
            raise click.BadParameter(str(exc), param_hint="IMAGES") from None
    many = len(paths) > 1
    images = tuple(paths)
    results, failures = [], []
    for path in images:
        try:
            image = read_image(path)
            faces = detect(image, backend, provided=provided, all_faces=all_faces,
                           name=str(path), **options)
        except (OcclusionSynthError, ValueError) as exc:
            failures.append(str(exc))
            if many:
                click.echo(f"error: {exc}", err=True)
            results.append({"image": str(path), "error": str(exc), "faces": []})
            continue
        h, w = image.shape[:2]
        for k, face in enumerate(faces):
            x0, y0, x1, y1 = (float(v) for v in face.box)
            click.echo(f"{path}: face {k} backend={face.backend} score={face.score:.3f} "
                       f"box=({x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}) "
                       f"iod={inter_ocular_distance(face.landmarks):.1f}px image={w}x{h}")
        results.append({"image": str(path), "width": w, "height": h,
                        "faces": [_face_dict(f) for f in faces]})
        if draw_dir is not None:
            try:
                write_image(draw_dir / f"{path.stem}_landmarks.png", _draw(image, faces))
            except OSError as exc:
                raise UserError(f"--draw {draw_dir}: cannot write ({exc.strerror or exc})") from None
    if json_out is not None:
        atomic_write_bytes(json_out, (json.dumps({"images": results}, indent=1) + "\n").encode())
    if failures:
        raise UserError(f"{len(failures)} of {len(images)} image(s) failed; first: {failures[0]}")
