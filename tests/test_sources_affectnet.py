"""AffectNet reader on fake data written in the real layout (training.csv / validation.csv)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from occlusion_synth.errors import DatasetFormatError
from occlusion_synth.io import write_image
from occlusion_synth.sources import affectnet, get_reader
from occlusion_synth.types import Sample, Skipped

HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
          "facial_landmarks", "expression", "valence", "arousal"]


def _landmark_string(rng) -> str:
    pts = rng.uniform(10, 50, size=(68, 2))
    return ";".join(f"{v:.2f}" for v in pts.ravel())


def write_affectnet(root, rows_by_split, rng):
    """rows_by_split: {"training.csv": [(rel, expression, landmarks or None, write_image?), ...]}"""
    for csv_name, rows in rows_by_split.items():
        with open(root / csv_name, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            for rel, expr, lms, make in rows:
                if make:
                    write_image(root / "Manually_Annotated_Images" / rel, rng.integers(0, 255, (60, 60, 3), np.uint8))
                w.writerow([rel, 5, 6, 40, 44, lms if lms is not None else _landmark_string(rng), expr,
                            "0.25", "-0.5"])


@pytest.fixture
def root(tmp_path, rng):
    (tmp_path / "Manually_Annotated_Images").mkdir()
    write_affectnet(tmp_path, {
        "training.csv": [("1/a.jpg", 0, None, True), ("1/b.jpg", 1, None, True), ("2/c.jpg", 6, None, True),
                         ("2/d.jpg", 7, None, True), ("3/e.jpg", 8, None, True), ("3/f.jpg", 9, None, True),
                         ("3/g.jpg", 10, None, True), ("3/h.jpg", 3, None, False), ("3/i.jpg", 2, "1;2;3", True),
                         ("3/j.jpg", "x", None, True)],
        "validation.csv": [("9/v1.png", 4, None, True), ("9/v2.png", 5, None, True)],
    }, rng)
    return tmp_path


def test_reads_labels_splits_landmarks_and_box(root):
    recs = list(get_reader("affectnet").iter_samples(root))
    samples = {r.id: r for r in recs if isinstance(r, Sample)}
    skipped = {r.id: r.reason for r in recs if isinstance(r, Skipped)}
    assert set(samples) == {"1_a", "1_b", "2_c", "3_i", "9_v1", "9_v2"}
    assert [samples[k].label for k in ("1_a", "1_b", "2_c", "9_v1", "9_v2")] == [0, 1, 6, 4, 5]
    assert samples["1_a"].split == "train" and samples["9_v1"].split == "test"
    a = samples["1_a"]
    assert a.landmarks.shape == (68, 2) and a.landmarks.dtype == np.float32
    np.testing.assert_allclose(a.box, [5, 6, 45, 50])
    assert a.meta["valence"] == 0.25 and a.meta["arousal"] == -0.5
    assert a.load().shape == (60, 60, 3)
    assert samples["3_i"].landmarks is None  # malformed landmark string: detector fallback in auto
    assert "contempt" in skipped["2_d"]
    assert "None" in skipped["3_e"] and "Uncertain" in skipped["3_f"] and "No-Face" in skipped["3_g"]
    assert "missing" in skipped["3_h"]
    assert "malformed" in skipped["3_j"]


def test_contempt_optional_and_split_selection(root):
    recs = list(affectnet.iter_samples(root, include_contempt=True, splits="train"))
    labels = {r.id: r.label for r in recs if isinstance(r, Sample)}
    assert labels["2_d"] == 7
    assert all(r.split == "train" for r in recs if isinstance(r, Sample))


def test_layout_errors_name_the_path(root):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        affectnet.iter_samples(root / "nope")
    empty = root / "empty"
    empty.mkdir()
    with pytest.raises(DatasetFormatError, match="Manually_Annotated_Images"):
        affectnet.iter_samples(empty)
    (root / "validation.csv").unlink()
    with pytest.raises(DatasetFormatError, match="validation.csv"):
        affectnet.iter_samples(root)
    assert any(isinstance(r, Sample) for r in affectnet.iter_samples(root, splits="train"))
    (root / "training.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DatasetFormatError, match="missing column"):
        affectnet.iter_samples(root, splits="train")
    with pytest.raises(DatasetFormatError, match="splits"):
        affectnet.iter_samples(root, splits="val")
