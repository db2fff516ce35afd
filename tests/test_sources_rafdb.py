"""RAF-DB reader on fake data written in the real on-disk format."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from occlusion_synth.errors import DatasetFormatError, ImageReadError
from occlusion_synth.io import write_image
from occlusion_synth.sources import get_reader, rafdb
from occlusion_synth.types import Sample, Skipped


def _fake_rafdb(root: Path, lines: list[str], images: dict[str, int], variant: str = "aligned") -> Path:
    """Write ``lines`` as the label file and one JPEG per ``{name: grey value}`` in ``variant``."""
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, value in images.items():
        img = np.full((24, 24, 3), value, np.uint8)
        write_image(rafdb.image_path(root, name, variant), img)
    return root


def test_label_map_is_the_raf_db_order():
    assert rafdb.LABEL_MAP == {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
    assert get_reader("rafdb") is rafdb


def test_reads_samples_and_skips_bad_lines(tmp_path):
    lines = ["train_00001.jpg 5", "train_00002.jpg 7", "", "test_00001.jpg 1",
             "train_00003.jpg", "garbage line here", "train_00004.jpg 9", "train_00005.jpg x",
             "test_00002.jpg 4"]
    root = _fake_rafdb(tmp_path / "basic", lines, {"train_00001.jpg": 10, "train_00002.jpg": 20,
                                                    "test_00001.jpg": 30, "train_00004.jpg": 40,
                                                    "train_00005.jpg": 50})
    records = list(rafdb.iter_samples(root))
    samples = [r for r in records if isinstance(r, Sample)]
    skipped = [r for r in records if isinstance(r, Skipped)]
    assert [(s.id, s.split, s.label) for s in samples] == [
        ("train_00001", "train", 2), ("train_00002", "train", 0), ("test_00001", "test", 3)]
    assert samples[0].source.endswith("Image/aligned/train_00001_aligned.jpg")
    img = samples[1].load()
    assert img.shape == (24, 24, 3) and img.dtype == np.uint8 and abs(int(img.mean()) - 20) <= 2
    reasons = {s.id: s.reason for s in skipped}
    assert set(reasons) == {"line5", "line6", "train_00004", "train_00005", "test_00002"}
    assert "malformed" in reasons["line5"] and "malformed" in reasons["line6"]
    assert "unknown RAF-DB label '9'" in reasons["train_00004"]
    assert "unknown RAF-DB label 'x'" in reasons["train_00005"]
    assert "missing" in reasons["test_00002"]
    assert next(s for s in skipped if s.id == "line5").source.endswith("list_patition_label.txt:5")


def test_split_filter_and_original_variant(tmp_path):
    lines = ["train_00001.jpg 4", "test_00001.jpg 6"]
    root = _fake_rafdb(tmp_path / "basic", lines, {"train_00001.jpg": 0, "test_00001.jpg": 0},
                       variant="original")
    got = list(rafdb.iter_samples(root, variant="original", splits="test"))
    assert [(s.id, s.split, s.label) for s in got] == [("test_00001", "test", 6)]
    assert got[0].source.endswith("Image/original/test_00001.jpg")
    with pytest.raises(DatasetFormatError, match="Image/aligned"):
        rafdb.iter_samples(root)  # only the original variant exists


def test_layout_errors_name_the_expected_path(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        rafdb.iter_samples(tmp_path / "nowhere")
    (tmp_path / "Image" / "aligned").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match="EmoLabel/list_patition_label.txt"):
        rafdb.iter_samples(tmp_path)
    with pytest.raises(DatasetFormatError, match="variant"):
        rafdb.iter_samples(tmp_path, variant="cropped")
    with pytest.raises(DatasetFormatError, match="splits"):
        rafdb.iter_samples(tmp_path, splits=["val"])


def test_truncated_image_raises_on_load_only(tmp_path):
    root = _fake_rafdb(tmp_path / "basic", ["train_00001.jpg 1"], {"train_00001.jpg": 0})
    path = rafdb.image_path(root, "train_00001.jpg")
    path.write_bytes(path.read_bytes()[:40])
    (sample,) = list(rafdb.iter_samples(root))
    with pytest.raises(ImageReadError, match="train_00001_aligned.jpg"):
        sample.load()
