"""FER2013 and FER+ readers on fake CSVs in the real format."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from occlusion_synth.errors import DatasetFormatError
from occlusion_synth.sources import fer2013, ferplus, get_reader
from occlusion_synth.types import Sample, Skipped

FERPLUS_HEADER = ["Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger",
                  "disgust", "fear", "contempt", "unknown", "NF"]


def _pixels(rng) -> str:
    return " ".join(str(v) for v in rng.integers(0, 256, 48 * 48))


@pytest.fixture
def root(tmp_path, rng):
    rows = [
        ("3", _pixels(rng), "Training"),      # 0 happy
        ("0", _pixels(rng), "PublicTest"),    # 1 angry
        ("6", _pixels(rng), "PrivateTest"),   # 2 neutral
        ("5", "1 2 3", "Training"),           # 3 too few pixels
        ("9", _pixels(rng), "Training"),      # 4 unknown label
        ("2", _pixels(rng), "Elsewhere"),     # 5 unknown usage
        ("1", _pixels(rng).replace("7", "x", 1), "Training"),  # 6 non-numeric pixel
        ("4", _pixels(rng), "Training"),      # 7 sad
    ]
    with open(tmp_path / "fer2013.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)
    votes = [
        ("Training", "fer0000000.png", [0, 9, 1, 0, 0, 0, 0, 0, 0, 0]),    # happiness
        ("PublicTest", "fer0000001.png", [4, 0, 0, 0, 4, 0, 0, 0, 2, 0]),  # tie neutral/anger
        ("PrivateTest", "fer0000002.png", [0, 0, 0, 0, 0, 0, 0, 0, 2, 8]),  # NF majority
        ("Training", "fer0000003.png", [6, 0, 0, 0, 0, 0, 0, 0, 4, 0]),    # neutral, but bad pixels
        ("Training", "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0, 7, 3]),    # unknown majority
        ("Training", "", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),                 # dropped by FER+
        ("Training", "fer0000006.png", [0, 0, 0, 0, 0, 0, 0, 7, 3, 0]),    # contempt
        ("Training", "fer0000007.png", [1, 0, 0, 0, 0, 0, 8, 1, 0, 0]),    # fear
    ]
    with open(tmp_path / "fer2013new.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FERPLUS_HEADER)
        for usage, name, v in votes:
            w.writerow([usage, name, *v])
    return tmp_path


def test_fer2013_labels_splits_and_bad_rows(root):
    recs = list(get_reader("fer2013").iter_samples(root))
    samples = {r.id: r for r in recs if isinstance(r, Sample)}
    skipped = {r.id: r.reason for r in recs if isinstance(r, Skipped)}
    assert {k: (s.label, s.split) for k, s in samples.items()} == {
        "fer0000000": (1, "train"), "fer0000001": (6, "val"), "fer0000002": (0, "test"),
        "fer0000007": (2, "train")}
    img = samples["fer0000000"].load()
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert "bad pixel string" in skipped["fer0000003"] and "2304" in skipped["fer0000003"]
    assert "unknown FER2013 label" in skipped["fer0000004"]
    assert "Usage" in skipped["fer0000005"]
    assert "bad pixel string" in skipped["fer0000006"]
    assert {s.split for s in fer2013.iter_samples(root, splits="val,test") if isinstance(s, Sample)} == {"val", "test"}


def test_fer2013_layout_errors(tmp_path):
    with pytest.raises(DatasetFormatError, match="fer2013.csv"):
        fer2013.iter_samples(tmp_path)
    (tmp_path / "fer2013.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetFormatError, match="header"):
        fer2013.iter_samples(tmp_path)


def test_ferplus_majority_vote_and_reasons(root):
    recs = list(get_reader("ferplus").iter_samples(root))
    samples = {r.id: r for r in recs if isinstance(r, Sample)}
    skipped = {r.id: r.reason for r in recs if isinstance(r, Skipped)}
    assert {k: s.label for k, s in samples.items()} == {"fer0000000": 1, "fer0000007": 4}
    # pixels come from the row-aligned fer2013.csv
    ref = {r.id: r for r in fer2013.iter_samples(root) if isinstance(r, Sample)}
    np.testing.assert_array_equal(samples["fer0000000"].load(), ref["fer0000000"].load())
    assert "tie" in skipped["fer0000001"]
    assert "not a face" in skipped["fer0000002"]
    assert "bad pixel string" in skipped["fer0000003"]
    assert "unknown" in skipped["fer0000004"]
    assert "dropped" in skipped["fer0000005"]
    assert "contempt" in skipped["fer0000006"]
    # with contempt allowed, row 6 gets past the vote and fails on its (broken) pixels instead
    with_contempt = {r.id: r.reason for r in ferplus.iter_samples(root, include_contempt=True)
                     if isinstance(r, Skipped)}
    assert "bad pixel string" in with_contempt["fer0000006"]


def test_ferplus_rejects_misaligned_files(root):
    lines = (root / "fer2013new.csv").read_text().splitlines()
    (root / "fer2013new.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DatasetFormatError, match="row-aligned"):
        ferplus.iter_samples(root)
