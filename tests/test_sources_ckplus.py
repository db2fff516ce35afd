"""CK+ reader on a fake tree in the real layout (cohn-kanade-images / Emotion / Landmarks)."""
from __future__ import annotations

import numpy as np
import pytest

from occlusion_synth.errors import DatasetFormatError
from occlusion_synth.io import write_image
from occlusion_synth.sources import ckplus, get_reader
from occlusion_synth.types import Sample, Skipped


def make_ckplus(root, sequences, rng, n_frames=3):
    """sequences: {(subject, seq): emotion text or None}."""
    for (subj, seq), emotion in sequences.items():
        last = None
        for f in range(1, n_frames + 1):
            stem = f"{subj}_{seq}_{f:08d}"
            write_image(root / "cohn-kanade-images" / subj / seq / f"{stem}.png",
                        rng.integers(0, 255, (40, 50, 3), np.uint8))
            lm = root / "Landmarks" / subj / seq / f"{stem}_landmarks.txt"
            lm.parent.mkdir(parents=True, exist_ok=True)
            lm.write_text("".join(f"   {x:.7e}   {y:.7e}\n" for x, y in rng.uniform(5, 35, (68, 2))))
            last = stem
        folder = root / "Emotion" / subj / seq
        folder.mkdir(parents=True, exist_ok=True)
        if emotion is not None:
            (folder / f"{last}_emotion.txt").write_text(emotion)


@pytest.fixture
def root(tmp_path, rng):
    make_ckplus(tmp_path, {
        ("S005", "001"): "   3.0000000e+00\n",  # disgust
        ("S010", "002"): "   2.0000000e+00\n",  # contempt
        ("S011", "001"): None,                   # unlabelled
        ("S022", "003"): "garbage\n",
        ("S026", "001"): "   5.0000000e+00\n",   # happy
    }, rng)
    return tmp_path


def test_peak_and_neutral_frames_with_landmarks(root):
    recs = list(get_reader("ckplus").iter_samples(root, folds=2, fold=0))
    samples = {r.id: r for r in recs if isinstance(r, Sample)}
    skipped = {r.id: r.reason for r in recs if isinstance(r, Skipped)}
    assert {k: s.label for k, s in samples.items()} == {
        "S005_001_00000003": 5, "S005_001_00000001": 0, "S026_001_00000003": 1, "S026_001_00000001": 0}
    s = samples["S005_001_00000003"]
    assert s.landmarks.shape == (68, 2) and s.landmarks.dtype == np.float32
    assert s.load().shape == (40, 50, 3)
    assert "contempt" in skipped["S010_002"]
    assert "unlabelled" in skipped["S011_001"]
    assert "malformed emotion" in skipped["S022_003"]
    # subjects dealt round-robin into 2 folds: sorted S005, S010, S011, S022, S026 -> 0,1,0,1,0
    assert samples["S005_001_00000003"].split == "test" and samples["S026_001_00000003"].split == "test"
    other = {r.id: r.split for r in ckplus.iter_samples(root, folds=2, fold=1) if isinstance(r, Sample)}
    assert set(other.values()) == {"train"}


def test_options(root):
    recs = [r for r in ckplus.iter_samples(root, include_neutral=False, include_contempt=True)
            if isinstance(r, Sample)]
    assert sorted(r.label for r in recs) == [1, 5, 7]
    (root / "Landmarks" / "S005" / "001" / "S005_001_00000003_landmarks.txt").write_text("1 2 3\n")
    s = {r.id: r for r in ckplus.iter_samples(root) if isinstance(r, Sample)}
    assert s["S005_001_00000003"].landmarks is None  # malformed: the detector takes over in auto mode


def test_layout_and_option_errors(tmp_path, root):
    with pytest.raises(DatasetFormatError, match="cohn-kanade-images"):
        ckplus.iter_samples(tmp_path / "Emotion")
    with pytest.raises(DatasetFormatError, match="fold"):
        ckplus.iter_samples(root, fold=10, folds=10)
