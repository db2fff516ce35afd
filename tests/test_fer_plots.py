"""fer_pi.plots writes real, non-trivial PNGs."""
from __future__ import annotations

import numpy as np
from PIL import Image

from fer_pi import plots


def _check_png(path, min_w=200, min_h=150):
    assert path.is_file() and path.stat().st_size > 2000
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w >= min_w and h >= min_h
        # not a blank canvas: the figure has drawn content
        arr = np.asarray(im.convert("L"))
        assert arr.std() > 5


def test_plot_curves_reads_header_generically(tmp_path):
    csv_path = tmp_path / "summary.csv"
    csv_path.write_text("epoch,phase,loss_cls,loss_rec,train_acc,val_acc,lr,time\n"
                        "1,pretrain,2.0,,0.2,0.25,1e-3,1.0\n"
                        "2,pretrain,1.6,,0.3,0.3,1e-3,1.0\n"
                        "1,finetune,1.4,0.2,0.5,0.4,2e-5,1.1\n")
    out = plots.plot_curves(csv_path, tmp_path / "curves.png")
    _check_png(out, min_w=500)
    header, cols = plots.read_summary(csv_path)
    assert header[2:6] == ["loss_cls", "loss_rec", "train_acc", "val_acc"]
    assert np.isnan(cols["loss_rec"][0]) and cols["phase"] == ["pretrain", "pretrain", "finetune"]


def test_plot_curves_on_header_only(tmp_path):
    csv_path = tmp_path / "summary.csv"
    csv_path.write_text("epoch,loss_cls,val_acc\n")
    assert plots.plot_curves(csv_path, tmp_path / "c.png").stat().st_size > 1000


def test_plot_confusion_and_shape_check(tmp_path):
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    _check_png(plots.plot_confusion(cm, ["neutral", "happiness", "sadness"], tmp_path / "cm.png"))
    import pytest

    with pytest.raises(ValueError, match="class names"):
        plots.plot_confusion(cm, ["a", "b"], tmp_path / "bad.png")


def test_plot_reconstructions_accepts_chw_float_and_hwc_uint8(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.random((3, 3, 32, 32)).astype(np.float32)
    occluded = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    import torch

    recon = torch.rand(3, 3, 32, 32)
    _check_png(plots.plot_reconstructions(clean, occluded, recon, tmp_path / "rec.png"), min_h=200)


def test_plot_category_bars(tmp_path):
    table = {"resnet": {"food": 61.0, "hand": 55.5, "mask": 40.0},
             "full": {"food": 64.0, "hand": 57.0, "mask": float("nan")}}
    _check_png(plots.plot_category_bars(table, tmp_path / "bars.png"))
