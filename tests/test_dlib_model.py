"""The predictor cut to its first cascade levels (landmarks/dlib_model.py): file format, cache,
errors, and the landmarks it gives on real faces."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from occlusion_synth.errors import LandmarkBackendError
from occlusion_synth.landmarks import get_backend
from occlusion_synth.landmarks import dlib_model
from occlusion_synth.landmarks.dlib_model import cascade_model, pack_int, truncate


def _float(value: float) -> bytes:
    mantissa, exponent = math.frexp(value)
    return pack_int(int(mantissa * (1 << 24))) + pack_int(exponent - 24)


def _matrix(values) -> bytes:
    return pack_int(-len(values)) + pack_int(-1) + b"".join(_float(v) for v in values)


def synthetic_predictor(levels: int = 3, trees: int = 2, dims: int = 4) -> bytes:
    """A tiny model in dlib's format: ``levels`` of ``trees`` one-split trees, ``dims`` outputs;
    level k's leaves hold k + 1 (so the levels kept can be read back)."""
    out = [pack_int(1), _matrix([0.5] * dims), pack_int(levels)]
    for k in range(levels):
        out.append(pack_int(trees))
        for _ in range(trees):
            out += [pack_int(1), pack_int(0), pack_int(1), _float(0.25),  # one split
                    pack_int(2), _matrix([k + 1.0] * dims), _matrix([-(k + 1.0)] * dims)]
    out.append(pack_int(levels))
    out += [pack_int(2) + pack_int(k) + pack_int(k + 1) for k in range(levels)]  # anchor_idx
    out.append(pack_int(levels))
    out += [pack_int(1) + _float(0.1 * k) + _float(-0.1 * k) for k in range(levels)]  # deltas
    return b"".join(out)


def test_pack_int_matches_dlib_encoding():
    assert pack_int(0) == b"\x01\x00"
    assert pack_int(-136) == b"\x81\x88"
    assert pack_int(500) == b"\x02\xf4\x01"


def test_truncate_keeps_the_first_levels_of_every_per_level_part():
    data = synthetic_predictor(levels=3)
    assert truncate(data, 3) == data
    two = truncate(data, 2)
    assert two == synthetic_predictor(levels=2)
    with pytest.raises(ValueError, match="cascade depth must be 1..3"):
        truncate(data, 4)


@pytest.mark.parametrize("bad", [b"", b"\x01\x02", b"junk" * 10, None])
def test_truncate_rejects_what_is_not_a_predictor(bad):
    data = synthetic_predictor()[:-3] if bad is None else bad  # None: a cut-off file
    with pytest.raises(ValueError, match="not a dlib shape predictor"):
        truncate(data, 1)


def test_cascade_model_builds_once_then_reads_the_cache(tmp_path, monkeypatch):
    source = tmp_path / "model.dat"
    source.write_bytes(synthetic_predictor(levels=3))
    monkeypatch.setenv("OCCSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    path = cascade_model(source, 2)
    assert path.parent == tmp_path / "cache" / "models"
    assert path.read_bytes() == synthetic_predictor(levels=2)
    built = path.stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(dlib_model, "truncate", lambda *a: calls.append(a))
    assert cascade_model(source, 2) == path and path.stat().st_mtime_ns == built and not calls
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    # a changed source gets a new file (named after its size and modification time)
    monkeypatch.undo()
    monkeypatch.setenv("OCCSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    source.write_bytes(synthetic_predictor(levels=4))
    assert cascade_model(source, 2) != path


def test_cascade_model_falls_back_to_the_temp_folder_then_fails_in_one_line(tmp_path, monkeypatch):
    source = tmp_path / "model.dat"
    source.write_bytes(synthetic_predictor(levels=3))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("OCCSYNTH_CACHE_DIR", str(blocker))  # <file>/models cannot be made
    monkeypatch.setattr(dlib_model.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    path = cascade_model(source, 1)
    assert path.parent.parent.parent == tmp_path / "tmp" and path.is_file()
    path.unlink()
    monkeypatch.setattr(dlib_model.tempfile, "gettempdir", lambda: str(blocker))
    with pytest.raises(LandmarkBackendError, match="cannot write the 1-level predictor.*OCCSYNTH_CACHE_DIR"):
        cascade_model(source, 1)


def test_cascade_model_names_a_bad_source(tmp_path):
    bad = tmp_path / "broken.dat"
    bad.write_bytes(b"\x01\x01" + os.urandom(64))
    with pytest.raises(LandmarkBackendError, match="broken.dat: not a dlib shape predictor"):
        cascade_model(bad, 3)
    with pytest.raises(LandmarkBackendError, match="missing.dat"):
        cascade_model(tmp_path / "missing.dat", 3)


@pytest.mark.parametrize("value", [0, 16, "ten", 10.5, None])
def test_cascade_depth_option_is_checked(value):
    with pytest.raises(ValueError, match="cascade_depth must be an integer 1..15"):
        get_backend("aligned", cascade_depth=value)


def test_real_model_round_trips_and_ten_levels_stay_close_to_the_full_model(face_crops_100):
    from occlusion_synth.landmarks.dlib_backend import PREDICTOR_68, model_path
    from occlusion_synth.landmarks.schemes import inter_ocular_distance

    data = open(model_path(PREDICTOR_68), "rb").read()
    assert truncate(data, 15) == data  # every byte of the installed model is accounted for
    full, short = get_backend("aligned", cascade_depth=15), get_backend("aligned")
    assert short.cascade_depth == 10
    for image, _ in face_crops_100:
        a, b = full.detect(image)[0].landmarks, short.detect(image)[0].landmarks
        moved = np.linalg.norm(a - b, axis=1).mean() / inter_ocular_distance(a)
        assert 0 < moved < 0.05  # another model, nearly the same points


def test_a_damaged_cached_copy_is_a_one_line_error_that_says_what_to_delete(tmp_path, monkeypatch):
    from occlusion_synth.landmarks import dlib_backend

    source = tmp_path / "model.dat"
    source.write_bytes(synthetic_predictor(levels=3))
    monkeypatch.setenv("OCCSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dlib_backend, "model_path", lambda name: str(source))
    cascade_model(source, 2).write_bytes(b"\x01\x01damaged")
    dlib_backend._predictor.cache_clear()
    try:
        with pytest.raises(LandmarkBackendError, match="could not be loaded.*delete this cached copy") as err:
            dlib_backend._predictor(2)
        assert "\n" not in str(err.value)
    finally:
        dlib_backend._predictor.cache_clear()


@pytest.mark.parametrize("points", [
    [(5, 6)] * 68,                                  # one byte per coordinate: the vectorised path
    [(0, 0), (-3, 300), (70000, -1), (255, 256)],   # signs and longer integers: the general path
    [(2 ** 40, -(2 ** 40))],
    [],
])
def test_points_read_through_the_pickled_state_equal_the_binding_s(points):
    dlib = pytest.importorskip("dlib")
    from occlusion_synth.landmarks.dlib_backend import _unpack_points

    parts = dlib.points([dlib.point(x, y) for x, y in points])
    got = _unpack_points(parts)
    want = np.array([(p.x, p.y) for p in parts], np.float32).reshape(-1, 2)
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_points_of_an_unexpected_state_fall_back_to_the_binding():
    from occlusion_synth.landmarks.dlib_backend import _unpack_points

    class Odd:
        def __init__(self, state):
            self.state = state

        def __getstate__(self):
            return self.state

    for state in ((b"\x01\x01\x01\x05",), (b"\x01\x01\x05\x05\x01\x05",), ("text",), (b"",), None):
        assert _unpack_points(Odd(state)) is None
