"""Templates prepared once: read-only library arrays, the per-process pyramid cache, the on-disk
cache of decoded templates, and rendering at output resolution (same result as from full size)."""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from PIL import Image

from occlusion_synth import functional as F
from occlusion_synth.functional.warp import SCALE_STEPS, PreparedRGBA, _unpremultiply, prepare_rgba, scale_step
from occlusion_synth.templates import load_templates
from occlusion_synth.templates.cache import CACHE_ENV, cache_dir


def _stripes_disc(size: int = 240) -> np.ndarray:
    """A disc with fine coloured stripes and a soft edge: aliasing and fringes both show."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(xx - size / 2, yy - size / 2)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = np.where((xx // 2) % 2 == 0, 250, 20)
    rgba[..., 1] = np.where((yy // 3) % 2 == 0, 200, 40)
    rgba[..., 2] = 120
    rgba[..., 3] = np.clip((size * 0.45 - r) * 64, 0, 255).astype(np.uint8)
    return rgba


def _reference_affine(rgba: np.ndarray, m: np.ndarray, shape):
    """The renderer before prepared templates: premultiply the full template, INTER_AREA from full
    size when shrinking under 0.75 (to the same scale step as the renderer: this compares the
    pyramid path, not the step), warp bilinearly, divide by alpha."""
    f = rgba.astype(np.float32)
    a = f[..., 3:4] / 255.0
    f[..., :3] *= a
    f[..., 3] = a[..., 0]
    h, w = rgba.shape[:2]
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    step = scale_step(scale)
    nw, nh = max(2, round(w * step)), max(2, round(h * step))
    small, fx, fy = f, 1.0, 1.0
    if scale < 0.75:
        small = cv2.resize(f, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / w, nh / h
    pre = np.array([[1 / fx, 0, 0.5 / fx - 0.5], [0, 1 / fy, 0.5 / fy - 0.5], [0, 0, 1]])
    out = cv2.warpAffine(small, m @ pre, (shape[1], shape[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    return _unpremultiply(out)  # the renderer's own division: only the warp path is compared


@pytest.mark.parametrize("scale", [0.9, 0.6, 0.4, 0.3, 0.2, 0.12])
@pytest.mark.parametrize("name", ["mask 0", "mask 3", "hand 0", "synthetic stripes"])
def test_render_from_pyramid_matches_full_size_render(scale, name):
    if name == "synthetic stripes":
        rgba = _stripes_disc()
    else:
        category, index = name.split()
        rgba = np.array(load_templates(categories=[category]).templates[int(index)].rgba)
    h, w = rgba.shape[:2]
    m = F.similarity_matrix((w / 2, h / 2), (50, 50), 11.0, scale)
    rgb, alpha, (x0, y0, x1, y1) = F.render_affine(rgba, m, (100, 100))
    ref_rgb, ref_alpha = _reference_affine(rgba, m, (100, 100))
    ref_rgb, ref_alpha = ref_rgb[y0:y1, x0:x1], ref_alpha[y0:y1, x0:x1]
    solid = (alpha > 0.5) & (ref_alpha > 0.5)
    if scale >= 0.75:  # no shrink filter: the very same pixels
        assert np.array_equal(alpha, ref_alpha) and np.array_equal(rgb[solid], ref_rgb[solid])
        return
    # INTER_AREA halvings then INTER_AREA to the exact size vs one INTER_AREA from full size: both
    # box filters; they differ by a slightly wider kernel, visible only in fine textures
    # below ~30 px output (scale 0.12 of a 240 px template) edge pixels are a large share of the
    # footprint, so the two box filters' mean alpha differs more there (0.0086 measured on a hand)
    assert np.abs(alpha - ref_alpha).mean() < (0.006 if scale > 0.15 else 0.01)
    assert np.abs(alpha - ref_alpha).max() < 0.2
    assert np.abs(rgb[solid] - ref_rgb[solid]).mean() < (11.0 if name == "synthetic stripes" else 6.0)


def test_pyramid_level_choice_follows_output_size():
    prepared = PreparedRGBA(_stripes_disc(256))
    for scale, side in [(1.0, 256), (0.8, 256), (0.5, 128), (0.3, 76), (0.26, 67), (0.05, 13)]:
        img, fx, fy = prepared.for_scale(scale)
        assert img.shape[1] == side, (scale, img.shape)
        assert fx == img.shape[1] / 256 and fy == img.shape[0] / 256
    # only the levels needed were made: 256, 128 (for 0.5, 0.3 and 0.26), 16 (for 0.05)
    assert sorted(prepared._levels) == [0, 1, 4]
    # a shrink under PRESCALE_BELOW lands on the nearest scale step: the bilinear warp after it
    # scales by 2 ** (+-1 / (2 * SCALE_STEPS)) at most, never into aliasing
    for scale in np.linspace(0.05, 0.74, 30):
        img, fx, _ = prepared.for_scale(scale)
        step = scale_step(scale)
        assert abs(np.log2(step / scale)) <= 0.5 / SCALE_STEPS + 1e-12
        assert img.shape[1] == max(2, round(256 * step)) and fx == img.shape[1] / 256
        assert step <= 2.0 ** -np.floor(-np.log2(scale))  # never above the pyramid level used
    # nearby scales share one shrink (a dataset of one face size reuses a few)
    before = len(prepared._sized)
    for scale in np.linspace(0.3, 0.31, 10):
        prepared.for_scale(scale)
    assert len(prepared._sized) - before <= 2


def test_prepared_cache_is_per_read_only_array_and_renders_identically():
    rgba = _stripes_disc(120)
    assert prepare_rgba(rgba) is not prepare_rgba(rgba)  # writable: prepared afresh each time
    frozen = rgba.copy()
    frozen.flags.writeable = False
    prepared = prepare_rgba(frozen)
    assert prepare_rgba(frozen) is prepared and prepare_rgba(prepared) is prepared
    src = np.array([(10, 10), (110, 10), (10, 110), (110, 110), (60, 60)], float)
    dst = src * 0.4 + (7, 9)
    dst[4] += (2, -1)
    first = F.render_tps(frozen, src, dst, (64, 64))
    second = F.render_tps(frozen, src, dst, (64, 64))  # from the cached level
    fresh = F.render_tps(rgba, src, dst, (64, 64))  # writable copy: no cache
    for a, b, c in zip(first, second, fresh):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_library_templates_are_read_only_and_stay_so_after_pickling():
    lib = load_templates(categories=["mask"])
    tpl = lib.templates[0]
    assert not tpl.rgba.flags.writeable
    assert tpl.prepared is tpl.prepared
    with pytest.raises(ValueError):
        tpl.rgba[0, 0, 0] = 1
    copy = pickle.loads(pickle.dumps(tpl))  # what a spawned worker receives
    assert not copy.rgba.flags.writeable and np.array_equal(copy.rgba, tpl.rgba)
    assert not tpl.flipped().rgba.flags.writeable


def test_disk_cache_serves_the_same_pixels_and_follows_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    lib_dir = tmp_path / "lib" / "hand"
    lib_dir.mkdir(parents=True)
    rgba = _stripes_disc(64)
    rgba[rgba[..., 3] == 0, :3] = (0, 255, 0)  # garbage under zero alpha: bled away on load
    Image.fromarray(rgba).save(lib_dir / "blob.png")
    first = load_templates(tmp_path / "lib").get("hand/blob").rgba
    entries = sorted(cache_dir().glob("*.npy"))
    assert len(entries) == 1
    second = load_templates(tmp_path / "lib").get("hand/blob").rgba
    assert np.array_equal(first, second) and not np.any(second[second[..., 3] == 0, 1] == 255)
    rgba2 = rgba.copy()
    rgba2[..., 2] = 7
    Image.fromarray(rgba2).save(lib_dir / "blob.png")  # changed bytes: a new entry, new pixels
    third = load_templates(tmp_path / "lib").get("hand/blob").rgba
    assert (third[third[..., 3] > 0, 2] == 7).all()
    assert len(sorted(cache_dir().glob("*.npy"))) == 2
    for entry in cache_dir().glob("*.npy"):  # damaged entries are rebuilt, not trusted
        entry.write_bytes(b"not an npy file")
    assert np.array_equal(load_templates(tmp_path / "lib").get("hand/blob").rgba, third)
    assert sum(e.stat().st_size > 100 for e in cache_dir().glob("*.npy")) == 1  # the one in use


def test_disk_cache_can_be_switched_off_and_tolerates_an_unwritable_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    assert cache_dir() is None
    lib = load_templates(categories=["drink"])
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    again = load_templates(categories=["drink"])
    assert [t.name for t in again] == [t.name for t in lib]
    assert all(np.array_equal(a.rgba, b.rgba) for a, b in zip(lib, again))
