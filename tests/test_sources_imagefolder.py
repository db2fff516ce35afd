"""Class-folder reader (source ``folder``) on fake folders."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from occlusion_synth.errors import DatasetFormatError
from occlusion_synth.io import write_image
from occlusion_synth.sources import get_reader, imagefolder
from occlusion_synth.types import Sample, Skipped


def _img(path: Path, value: int = 0) -> None:
    write_image(path, np.full((16, 16, 3), value, np.uint8))


def _records(root, **kw):
    recs = list(imagefolder.iter_samples(root, **kw))
    return ([r for r in recs if isinstance(r, Sample)], [r for r in recs if isinstance(r, Skipped)])


def test_class_names_and_aliases(tmp_path):
    _img(tmp_path / "happy" / "a.jpg")
    _img(tmp_path / "Anger" / "b.png")
    _img(tmp_path / "neutral" / "sub" / "c.jpg")
    (tmp_path / "neutral" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "neutral" / "notes.txt").write_text("hi")
    samples, skipped = _records(tmp_path)
    assert get_reader("folder") is imagefolder
    assert sorted((s.id, s.split, s.label) for s in samples) == [
        ("train_Anger_b", "train", 6), ("train_happy_a", "train", 1), ("train_neutral_sub_c", "train", 0)]
    # nothing is silently ignored: the hidden file and the text file are listed with reasons
    reasons = sorted((s.source.rsplit("/", 1)[1], s.reason) for s in skipped)
    assert reasons == [(".DS_Store", "hidden file (not read)"), ("notes.txt", "not an image file (suffix '.txt')")]
    assert samples[0].load().shape == (16, 16, 3)


def test_numeric_folders_need_a_label_map(tmp_path):
    for i in range(3):
        _img(tmp_path / "train" / str(i) / f"{i}.jpg")
        _img(tmp_path / "test" / str(i) / f"{i}.jpg")
    with pytest.raises(DatasetFormatError, match=r"\['0', '1', '2'\].*label_map"):
        imagefolder.iter_samples(tmp_path)
    samples, skipped = _records(tmp_path, label_map="0=neutral, 1=happy, 2=6")
    assert sorted((s.split, s.label) for s in samples) == [
        ("test", 0), ("test", 1), ("test", 6), ("train", 0), ("train", 1), ("train", 6)]
    assert not skipped
    path = tmp_path.parent / f"{tmp_path.name}_map.json"  # outside the dataset (inside, it would be listed)
    path.write_text(json.dumps({"0": "surprise", "1": "fear"}))
    samples, skipped = _records(tmp_path, label_map=str(path), splits=["test"])
    assert sorted(s.label for s in samples) == [3, 4]
    assert [s.split for s in samples] == ["test", "test"]
    assert len(skipped) == 1 and "'2'" in skipped[0].reason and skipped[0].id.startswith("test_2_2")


def test_bad_label_maps_are_user_errors(tmp_path):
    _img(tmp_path / "0" / "a.jpg")
    with pytest.raises(DatasetFormatError, match="expected FOLDER=CLASS"):
        imagefolder.iter_samples(tmp_path, label_map="0:neutral")
    with pytest.raises(DatasetFormatError, match="unknown expression name 'joy'"):
        imagefolder.iter_samples(tmp_path, label_map="0=joy")
    with pytest.raises(DatasetFormatError, match="out of range"):
        imagefolder.iter_samples(tmp_path, label_map={"0": 12})
    with pytest.raises(DatasetFormatError, match="cannot read JSON"):
        imagefolder.iter_samples(tmp_path, label_map=str(tmp_path / "missing.json"))
    with pytest.raises(DatasetFormatError, match="does not exist"):
        imagefolder.iter_samples(tmp_path / "nope")


def test_non_ascii_names_give_unique_safe_ids(tmp_path):
    names = ["café.jpg", "cafe.jpg", "笑顔.png", "a b.jpg", "a_b.jpg", "x.jpg", "x.png"]
    for n in names:
        _img(tmp_path / "happiness" / n, 7)
    _img(tmp_path / "joy" / "y.jpg")
    samples, skipped = _records(tmp_path)
    ids = [s.id for s in samples]
    assert len(ids) == len(set(ids)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", i) for i in ids)
    assert "train_happiness_cafe" in ids and "train_happiness_a_b" in ids
    for s in samples:  # non-ASCII paths load
        assert s.load()[0, 0, 0] in range(5, 10)
    assert len(skipped) == 1 and "'joy'" in skipped[0].reason
    # reproducible: the same ids on a second pass
    assert [s.id for s in _records(tmp_path)[0]] == ids
