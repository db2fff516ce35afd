import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from occlusion_synth.errors import ImageReadError
from occlusion_synth.io import read_image, write_image


def test_import_does_not_pull_heavy_backends():
    code = ("import sys, occlusion_synth, fer_pi; "
            "bad = [m for m in ('dlib', 'mediapipe', 'torch', 'cv2') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_photos_fetched(photo_arrays):
    assert {"astronaut.png", "obama.jpg", "biden.jpg"} <= set(photo_arrays)
    for arr in photo_arrays.values():
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "I;16", "P", "LA"])
def test_read_image_modes(tmp_path, mode):
    from PIL import Image

    im = Image.new(mode, (20, 10))
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(path)
    arr = read_image(path)
    assert arr.shape == (10, 20, 3) and arr.dtype == np.uint8


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_read_image_broken_files_name_the_file(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(path)


def test_read_image_truncated_jpeg(tmp_path):
    path = tmp_path / "t.jpg"
    write_image(path, np.full((64, 64, 3), 128, np.uint8))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_image(path)


def test_write_image_round_trip_and_no_temp_left(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (8, 9, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", img)
    assert np.array_equal(read_image(tmp_path / "a.png"), img)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_atomic_write_skips_stale_temp_names_and_leaves_nothing_on_error(tmp_path, monkeypatch):
    """The temporary name is pid/thread/counter based: a stale file of a killed process with the
    same name is never reused or overwritten; a failed write leaves neither a temp file nor a target."""
    import itertools
    import os

    from occlusion_synth import io as oio

    monkeypatch.setattr(oio, "_TEMP_COUNTER", itertools.count())
    stale = Path(oio._temp_name(tmp_path / "a.png"))  # what the first attempt will be called
    stale.write_bytes(b"someone else's")
    oio.atomic_write_bytes(tmp_path / "sub" / "a.png", b"x")  # other folder: made on the first miss
    monkeypatch.setattr(oio, "_TEMP_COUNTER", itertools.count())
    oio.atomic_write_bytes(tmp_path / "a.png", b"new")  # its first temp name is the stale one
    assert (tmp_path / "a.png").read_bytes() == b"new" and stale.read_bytes() == b"someone else's"
    assert (tmp_path / "sub" / "a.png").read_bytes() == b"x"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask
    try:
        with oio.atomic_open(tmp_path / "b.png") as fh:
            fh.write(b"half")
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.png", "sub", stale.name])
