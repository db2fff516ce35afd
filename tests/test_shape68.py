"""The compact predictor engine (landmarks/_shape68.c + dlib_model.compact_model): the same trees
as dlib's predictor, evaluated in C on a compact copy of the model."""
from __future__ import annotations

import numpy as np
import pytest

from occlusion_synth.errors import LandmarkBackendError
from occlusion_synth.landmarks import dlib_backend, get_backend
from occlusion_synth.landmarks.dlib_model import compact_arrays, compact_model, pack_int
from occlusion_synth.landmarks.schemes import inter_ocular_distance

from test_dlib_model import _float, synthetic_predictor

shape68 = pytest.importorskip("occlusion_synth.landmarks._shape68", reason="the C extension was not built")
dlib = pytest.importorskip("dlib")


def _matrix(values) -> bytes:
    return pack_int(-len(values)) + pack_int(-1) + b"".join(_float(float(v)) for v in values)


def small_68_model(seed: int, levels: int = 3, trees: int = 40, features: int = 120) -> bytes:
    """A random 68-point predictor in dlib's format whose leaf values are multiples of 2**-20 with
    the largest at +-32767 * 2**-20, so the engine's 16-bit leaves hold them exactly: then the
    engine and dlib must pick the same leaves and give the same points."""
    rng = np.random.default_rng(seed)
    initial = np.column_stack([rng.uniform(0.15, 0.85, 68), rng.uniform(0.15, 0.85, 68)]).ravel()
    out = [pack_int(1), _matrix(initial), pack_int(levels)]
    for _ in range(levels):
        out.append(pack_int(trees))
        leaves = rng.integers(-32767, 32768, (trees, 4, 136))
        leaves[0, 0, 0] = 32767
        for t in range(trees):
            out.append(pack_int(3))  # a complete tree of depth 2: 3 splits, 4 leaves
            for _ in range(3):
                i1, i2 = rng.integers(0, features, 2)
                out += [pack_int(int(i1)), pack_int(int(i2)), _float(float(rng.integers(-40, 40)))]
            out.append(pack_int(4))
            out += [_matrix(leaf * 2.0 ** -20) for leaf in leaves[t]]
    out.append(pack_int(levels))
    for _ in range(levels):
        out.append(pack_int(features) + b"".join(pack_int(int(a)) for a in rng.integers(0, 68, features)))
    out.append(pack_int(levels))
    for _ in range(levels):
        deltas = rng.uniform(-0.08, 0.08, 2 * features).round(6)
        out.append(pack_int(features) + b"".join(_float(float(d)) for d in deltas))
    return b"".join(out)


def _compact_predict(arrays: dict, image: np.ndarray, box) -> np.ndarray:
    levels, trees, nodes = arrays["splits"].shape[:3]
    out = shape68.predict(image, image.shape[0], image.shape[1], 3, *box, levels, trees,
                          arrays["anchors"].shape[1], (nodes + 1).bit_length() - 1, arrays["initial"],
                          arrays["anchors"], arrays["deltas"], arrays["splits"], arrays["thresholds"],
                          arrays["leaves"], arrays["scales"])
    return np.frombuffer(out, np.float32).reshape(68, 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_engine_picks_the_leaves_dlib_picks(tmp_path, face_crops_100, seed):
    """Exactly representable leaves: the engine's points, rounded as dlib rounds, are dlib's."""
    data = small_68_model(seed)
    path = tmp_path / "small.dat"
    path.write_bytes(data)
    predictor = dlib.shape_predictor(str(path))
    arrays = compact_arrays(data, 3)
    same = total = 0
    for image, _ in face_crops_100:
        for box in ((0, 0, 99, 99), (10, 5, 90, 95), (-20, -10, 120, 110)):
            ref = np.array([(p.x, p.y) for p in predictor(image, dlib.rectangle(*box)).parts()], np.float32)
            got = np.floor(_compact_predict(arrays, image, box) + 0.5)
            same += int((got == ref).all(axis=1).sum())
            total += 68
    assert same == total


def test_compact_engine_agrees_with_dlib_on_real_faces(face_crops_100):
    for depth in (10, 15):
        for image, _ in face_crops_100:
            box = (0, 0, image.shape[1] - 1, image.shape[0] - 1)
            ref = dlib_backend.predict_68(image, box, depth, "dlib")
            got = dlib_backend.predict_68(image, box, depth, "compact")
            assert got.dtype == np.float32 and got.shape == (68, 2)
            moved = np.linalg.norm(got - ref, axis=1)
            # dlib rounds to whole pixels (up to 0.71 px away); 16-bit leaves may flip a few splits
            assert moved.mean() / inter_ocular_distance(ref) < 0.04
            assert np.mean(np.abs(np.floor(got + 0.5) - ref) <= 1) > 0.9


def test_engine_option_picks_and_checks_the_engine(monkeypatch, face_crops_100):
    image = face_crops_100[0][0]
    assert get_backend("aligned").engine == "compact" and get_backend("dlib").engine == "compact"
    exact = get_backend("aligned", engine="dlib").detect(image)[0].landmarks
    assert np.array_equal(exact, np.round(exact))  # dlib's own integer points
    with pytest.raises(ValueError, match="engine must be one of"):
        get_backend("aligned", engine="fast")
    monkeypatch.setattr(dlib_backend, "_shape68", lambda: None)  # as if the extension were not built
    assert dlib_backend.AlignedBackend().engine == "dlib"
    with pytest.raises(LandmarkBackendError, match="engine=compact needs the C extension"):
        dlib_backend.AlignedBackend(engine="compact")


def test_extension_rejects_bad_arguments_instead_of_reading_past_buffers():
    arrays = compact_arrays(small_68_model(0, levels=1, trees=2, features=4), 1)
    image = np.zeros((20, 20, 3), np.uint8)
    args = [arrays[k] for k in ("initial", "anchors", "deltas", "splits", "thresholds", "leaves", "scales")]
    ok = (image, 20, 20, 3, 0, 0, 19, 19, 1, 2, 4, 2)
    assert len(shape68.predict(*ok, *args)) == 68 * 2 * 4
    with pytest.raises(ValueError, match="image"):
        shape68.predict(image, 40, 20, 3, 0, 0, 19, 19, 1, 2, 4, 2, *args)  # taller than the buffer
    with pytest.raises(ValueError, match="splits: .* bytes, need"):
        shape68.predict(*ok[:9], 5, 4, 2, *args)  # more trees than given
    with pytest.raises(ValueError, match="dimensions"):
        shape68.predict(image, 20, 20, 2, 0, 0, 19, 19, 1, 2, 4, 2, *args)
    bad = dict(zip(("initial", "anchors", "deltas", "splits", "thresholds", "leaves", "scales"), args))
    bad["splits"] = np.full_like(bad["splits"], 9)  # a feature index past the 4 features
    with pytest.raises(ValueError, match="out of range"):
        shape68.predict(*ok, *bad.values())


def test_compact_model_is_built_once_then_read_and_a_damaged_copy_names_itself(tmp_path, monkeypatch):
    source = tmp_path / "model.dat"
    source.write_bytes(small_68_model(3, levels=2, trees=3, features=10))
    monkeypatch.setenv("OCCSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    first = compact_model(source, 2)
    assert not first["leaves"].flags.writeable
    cached = list((tmp_path / "cache" / "models").glob("*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr("occlusion_synth.landmarks.dlib_model.compact_arrays",
                        lambda *a: pytest.fail("rebuilt instead of read from the cache"))
    again = compact_model(source, 2)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    cached[0].write_bytes(b"not an npz")
    with pytest.raises(LandmarkBackendError, match="could not be read.*delete it") as err:
        compact_model(source, 2)
    assert "\n" not in str(err.value) and str(cached[0]) in str(err.value)


def test_compact_arrays_rejects_what_is_not_a_68_point_predictor():
    with pytest.raises(ValueError, match="68-point"):
        compact_arrays(synthetic_predictor(levels=2, dims=4), 1)
    with pytest.raises(ValueError, match="not a dlib shape predictor"):
        compact_arrays(b"\x01\x01garbage", 1)


def test_lanes_decode_dlib_integers_and_stop_at_the_end():
    from occlusion_synth.landmarks.dlib_model import _read_lanes

    values = [0, 5, -300, 2 ** 40, -(2 ** 62), 255, 256, -1]
    data = np.frombuffer(b"".join(pack_int(v) for v in values * 2), np.uint8)
    second = len(b"".join(pack_int(v) for v in values))
    got = _read_lanes(data, np.array([0, second]), len(values))
    assert got.tolist() == [values, values]
    with pytest.raises(ValueError, match="past the end"):
        _read_lanes(data, np.array([second]), len(values) + 1)
    with pytest.raises(ValueError, match="bad integer"):
        _read_lanes(np.frombuffer(b"\x01\x05\x30\x00", np.uint8), np.array([0]), 2)


def test_a_build_of_another_source_version_is_not_used(monkeypatch):
    assert dlib_backend._shape68() is shape68
    monkeypatch.setattr(shape68, "ABI", shape68.ABI + 1)  # as if left over from an older source
    assert dlib_backend._shape68() is None
    assert dlib_backend.AlignedBackend().engine == "dlib"


def test_preparing_builds_the_cached_model_once_without_loading_it(tmp_path, monkeypatch):
    from occlusion_synth.landmarks import dlib_model

    source = tmp_path / "model.dat"
    source.write_bytes(small_68_model(4, levels=2, trees=3, features=10))
    monkeypatch.setenv("OCCSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    dlib_model.prepare_compact(source, 2)
    assert len(list((tmp_path / "cache" / "models").glob("*.npz"))) == 1
    monkeypatch.setattr(dlib_model, "compact_arrays", lambda *a: pytest.fail("built twice"))
    monkeypatch.setattr(dlib_model.np, "load", lambda *a, **k: pytest.fail("loaded while preparing"))
    dlib_model.prepare_compact(source, 2)  # already there: only looked up
