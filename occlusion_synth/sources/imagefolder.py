"""Plain class-folder reader (source name ``folder``, torchvision ImageFolder style).

Three layouts are recognised::

    ROOT/<class>/**/*.jpg              every image gets split=``split`` (default "train")
    ROOT/<split>/<class>/**/*.jpg      when every top-level folder is a split name
                                       (train, val/valid/validation, test)
    ROOT/*.jpg                         a flat folder of unlabelled photos (no sub-folders):
                                       label None (the manifest's label is left empty),
                                       class folder ``unlabelled`` in the output

Class folders are mapped to canonical labels by name (``happy``, ``Happiness``, ``angry`` ...,
see :func:`occlusion_synth.labels.label_index`) or by a ``label_map`` for other names, e.g. the
numeric folders of community copies of RAF-DB/AffectNet (``ROOT/train/0..6``)::

    label_map="0=neutral,1=happiness,2=sadness,3=surprise,4=fear,5=disgust,6=anger"

A ``label_map`` is a dict ``{folder: canonical name or canonical index}``, that string form, or
the path of a JSON file holding such a dict. Files in unknown class folders are yielded as
:class:`Skipped` with the reason; when no folder maps at all, a ``DatasetFormatError`` lists the
folders found. Nothing is silently ignored: non-image files, hidden files and folders, folders
named like images (``x.jpg/``) and loose files beside class folders are yielded as
:class:`Skipped` with the reason.

Sample ids are ``{split}_{class}_{stem}`` (plus sub-folders), made filesystem-safe by
:func:`occlusion_synth.sources._common.safe_id` (non-ASCII names get a short hash suffix) and kept
unique (a repeated id gets the hash of its relative path).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Union

from ..errors import DatasetFormatError
from ..labels import CANONICAL, label_index
from ..types import Sample, Skipped
from ._common import IMAGE_EXTENSIONS, PathLike, image_loader, require_dir, safe_id, short_hash

# default mapping: canonical class name -> canonical label (aliases via labels.label_index)
LABEL_MAP: dict[str, int] = {name: i for i, name in enumerate(CANONICAL)}

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}

LabelMapSpec = Union[None, str, os.PathLike, Mapping[str, Union[int, str]]]


def _to_label(value: Union[int, str], where: str) -> int:
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        idx = int(value)
        if not 0 <= idx < len(CANONICAL):
            raise DatasetFormatError(f"{where}: canonical label {idx} out of range 0..{len(CANONICAL) - 1}")
        return idx
    try:
        return label_index(str(value))
    except ValueError as exc:
        raise DatasetFormatError(f"{where}: {exc}") from None


def parse_label_map(spec: LabelMapSpec) -> Optional[dict[str, int]]:
    """Turn a ``label_map`` option into ``{folder name: canonical label}``.

    Args:
        spec: None; a dict ``{folder: canonical name or index}``; a string
            ``"0=neutral,1=happiness"``; or the path of a JSON file holding such a dict.

    Raises:
        DatasetFormatError: unparsable entry, unknown class name, unreadable JSON (names the entry).
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return {str(k).strip(): _to_label(v, f"label_map[{k!r}]") for k, v in spec.items()}
    text = os.fspath(spec)
    if text.lower().endswith(".json") or (os.path.sep in text and "=" not in text):
        try:
            data = json.loads(Path(text).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetFormatError(f"label_map file {text}: cannot read JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DatasetFormatError(f"label_map file {text}: expected a JSON object folder -> class")
        return {str(k).strip(): _to_label(v, f"label_map file {text}, key {k!r}") for k, v in data.items()}
    out: dict[str, int] = {}
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if "=" not in item:
            raise DatasetFormatError(
                f"label_map entry {item!r}: expected FOLDER=CLASS, e.g. '0=neutral,1=happiness'")
        key, value = (s.strip() for s in item.split("=", 1))
        out[key] = _to_label(value, f"label_map entry {item!r}")
    if not out:
        raise DatasetFormatError("label_map is empty; expected e.g. '0=neutral,1=happiness'")
    return out


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _class_label(name: str, label_map: Optional[dict[str, int]]) -> Optional[int]:
    if label_map is not None:
        return label_map.get(name)
    try:
        return label_index(name)
    except ValueError:
        return None


def iter_samples(root: PathLike, label_map: LabelMapSpec = None, split: str = "train",
                 splits: Optional[Union[Iterable[str], str]] = None) -> Iterator[Union[Sample, Skipped]]:
    """Stream a class-folder dataset as :class:`Sample` / :class:`Skipped` records.

    The layout and the label map are checked at call time; files are listed folder by folder
    (sorted, so the order and the ids are reproducible) while iterating.

    Args:
        root: the dataset folder.
        label_map: folder name -> canonical class (see :func:`parse_label_map`); None maps folders
            by canonical name or alias.
        split: split given to every sample of the flat ``ROOT/<class>`` layout.
        splits: keep only these splits (a list or a comma-separated string); None keeps all.

    Raises:
        DatasetFormatError: ``root`` is missing or has no sub-folders, no class folder maps to a
            label (the message lists the folders found), or ``label_map`` is invalid.
    """
    root = require_dir(Path(root), "image-folder root")
    mapping = parse_label_map(label_map)
    if isinstance(splits, str):
        splits = [s for s in splits.split(",") if s]
    wanted = None if splits is None else {SPLIT_NAMES.get(s.strip().lower(), s.strip()) for s in splits}
    top = [p for p in _visible_dirs(root) if p.suffix.lower() not in IMAGE_EXTENSIONS]
    if not top:
        if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in root.iterdir()):
            if wanted is not None and split not in wanted:
                return iter(())
            return _iter_flat(root, split)
        raise DatasetFormatError(f"image-folder root {root}: no class sub-folders or images found "
                                 "(expected ROOT/<class>/*.jpg, ROOT/<split>/<class>/*.jpg or ROOT/*.jpg)")
    if all(p.name.lower() in SPLIT_NAMES for p in top):
        groups = [(SPLIT_NAMES[p.name.lower()], d) for p in top for d in _visible_dirs(p)]
    else:
        groups = [(split, d) for d in top]
    if wanted is not None:
        groups = [(s, d) for s, d in groups if s in wanted]
    names = sorted({d.name for _, d in groups})
    if groups and not any(_class_label(n, mapping) is not None for n in names):
        hint = ("none is in label_map" if mapping is not None else
                "none is an expression name; pass label_map, e.g. '0=neutral,1=happiness,...'")
        raise DatasetFormatError(f"image-folder root {root}: class folders {names[:20]} found but {hint}")
    return _iter(root, groups, mapping)


def _files(folder: Path) -> Iterator[tuple[Path, Optional[str]]]:
    """Every entry under ``folder`` as ``(path, reason to skip it or None)``, sorted.

    Hidden entries and folders named like images are reported, never silently dropped; what is
    not a regular file (FIFO, device, broken link) is left to the image reader, which refuses it
    without opening it for reading.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        keep = []
        for d in sorted(dirnames):
            path = Path(dirpath) / d
            if d.startswith("."):
                yield path, "hidden folder (not read)"
            elif Path(d).suffix.lower() in IMAGE_EXTENSIONS:
                yield path, "not a regular file (a directory)"
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            yield Path(dirpath) / name, "hidden file (not read)" if name.startswith(".") else None


def _iter_flat(root: Path, split: str) -> Iterator[Union[Sample, Skipped]]:
    """A flat folder of unlabelled photos: one sample per image, label None."""
    seen: set[str] = set()
    for path, reason in _files(root):
        rel = path.relative_to(root).as_posix()
        sid = safe_id(f"{split}_{path.relative_to(root).with_suffix('').as_posix().replace('/', '_')}", key=rel)
        if sid in seen:
            sid = f"{sid}_{short_hash(rel)}"
        seen.add(sid)
        if reason is None and path.suffix.lower() not in IMAGE_EXTENSIONS:
            reason = f"not an image file (suffix {path.suffix or 'none'!r})"
        if reason is not None:
            yield Skipped(sid, str(path), reason)
        else:
            yield Sample(id=sid, split=split, label=None, source=str(path), load=image_loader(path),
                         meta={"class_folder": ""})


def _iter(root: Path, groups: list, mapping: Optional[dict[str, int]]) -> Iterator[Union[Sample, Skipped]]:
    seen: set[str] = set()
    for path in sorted(root.iterdir()):  # loose entries beside the class/split folders
        if path.is_dir() and not path.name.startswith(".") and path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.is_dir() and path.name.lower() in SPLIT_NAMES:
            continue
        sid = safe_id(f"root_{path.name}", key=path.name)
        seen.add(sid)
        yield Skipped(sid, str(path), "hidden entry (not read)" if path.name.startswith(".") else
                      "not a regular file (a directory)" if path.is_dir() else
                      "not in a class folder (ROOT/<class>/file)")
    for split, class_dir in groups:
        label = _class_label(class_dir.name, mapping)
        for path, reason in _files(class_dir):
            rel = path.relative_to(root).as_posix()
            inner = path.relative_to(class_dir).with_suffix("").as_posix().replace("/", "_")
            sid = safe_id(f"{split}_{class_dir.name}_{inner}", key=rel)
            if sid in seen:
                sid = f"{sid}_{short_hash(rel)}"
            seen.add(sid)
            if reason is not None:
                yield Skipped(sid, str(path), reason)
            elif label is None:
                yield Skipped(sid, str(path), f"class folder {class_dir.name!r} is not a known "
                                              "expression (add it to label_map)")
            elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                yield Skipped(sid, str(path), f"not an image file (suffix {path.suffix or 'none'!r})")
            else:
                yield Sample(id=sid, split=split, label=label, source=str(path),
                             load=image_loader(path), meta={"class_folder": class_dir.name})
