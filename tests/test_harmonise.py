"""The harmonisation kernels (occlusion_synth.functional.harmonise) on synthetic and real pixels."""
import cv2
import numpy as np
import pytest

import occlusion_synth.functional.harmonise as H
from occlusion_synth import functional as F


def _skin(h=80, w=80, level=1.0, seed=0):
    """A skin-coloured patch with a little texture, scaled by ``level``."""
    rng = np.random.default_rng(seed)
    base = np.array([200.0, 158.0, 135.0]) * level
    img = base + rng.normal(0, 3, (h, w, 1))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _occluder(h=30, w=30, colour=(40, 90, 230)):
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[:] = colour
    alpha = np.zeros((h, w), np.float32)
    cv2.circle(alpha, (w // 2, h // 2), min(h, w) // 2 - 2, 1.0, -1)
    return rgb, alpha


def test_noise_estimator_reads_the_added_noise():
    flat = np.full((80, 80), 120.0, np.float32)
    ramp = flat + np.linspace(0, 40, 80)[None, :]  # smooth structure is ignored
    for sigma in (1.0, 3.0, 6.0):
        noise = np.random.default_rng(1).normal(0, sigma, flat.shape)
        assert H.noise_sigma(ramp + noise) == pytest.approx(sigma, rel=0.15)
    assert H.noise_sigma(ramp) < 0.2


def test_edge_blur_grows_with_the_blur():
    disk = np.zeros((60, 60), np.float32)
    cv2.circle(disk, (30, 30), 18, 200, -1, lineType=cv2.LINE_AA)
    readings = [H.edge_blur(cv2.GaussianBlur(disk, (0, 0), s)) for s in (0.5, 1.0, 1.5, 2.0, 3.0)]
    assert all(b > a for a, b in zip(readings, readings[1:]))
    assert H.edge_blur(np.full((60, 60), 90, np.float32)) == 0.0  # no edges, no reading


def test_light_follows_a_darkened_photo():
    rgb, alpha = _occluder()
    box = (25, 25, 55, 55)
    ratios = []
    for level in (1.0, 0.35):
        img = _skin(level=level)
        stats = F.measure_scene(img, box)
        out, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, grain=False, blur=False)
        ratios.append(F.luma(out[alpha > 0.5]).mean())
    assert ratios[1] / ratios[0] <= 0.6


def test_colour_cast_follows_the_photo_but_a_blue_occluder_stays_blue():
    rgb, alpha = _occluder()
    box = (25, 25, 55, 55)
    neutral = _skin()
    bluish = np.clip(neutral * np.array([0.8, 0.95, 1.25]), 0, 255).astype(np.uint8)
    outs = []
    for img in (neutral, bluish):
        stats = F.measure_scene(img, box)
        out, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, grain=False, blur=False, light=False)
        outs.append(out[alpha > 0.5].mean(0))
    assert outs[1][2] / outs[1][0] > outs[0][2] / outs[0][0]  # bluer in blue light
    assert outs[0][2] > outs[0][0] + 60  # still clearly blue in neutral light


@pytest.mark.parametrize("one_channel_photo", [True, False])
def test_grey_photo_gives_a_grey_occluder(one_channel_photo):
    rgb, alpha = _occluder()
    box = (25, 25, 55, 55)
    grey = F.luma(_skin()).round().astype(np.uint8)
    img = np.repeat(grey[..., None], 3, axis=2)
    if not one_channel_photo:  # near grey: +-2 levels of chroma noise
        img = np.clip(img.astype(int) + np.random.default_rng(0).integers(-2, 3, img.shape), 0, 255)
        img = img.astype(np.uint8)
    stats = F.measure_scene(img, box)
    assert stats.grey
    out, a, b = F.harmonise_occluder(rgb, alpha, box, img, stats, noise_seed=3)
    if one_channel_photo:
        assert stats.tint == (1.0, 1.0, 1.0)
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    else:
        spread = out[a > 0.5].max(1) - out[a > 0.5].min(1)
        assert spread.mean() < 3.0


def test_blur_softens_the_occluder_and_grows_its_patch():
    rgb, alpha = _occluder()
    box = (25, 25, 55, 55)
    img = cv2.GaussianBlur(_skin(), (0, 0), 2.5)
    cv2.rectangle(img, (5, 5), (20, 70), (60, 40, 30), -1)  # an edge to read the blur from
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    stats = F.measure_scene(img, box)
    assert stats.blur > 1.5
    out, a, nbox = F.harmonise_occluder(rgb, alpha, box, img, stats, grain=False)
    assert nbox[0] < box[0] and nbox[2] > box[2]
    assert np.count_nonzero((a > 0) & (a < 0.99)) > np.count_nonzero((alpha > 0) & (alpha < 0.99))


def test_grain_matches_the_photo_and_replays_from_its_seed():
    rgb, alpha = _occluder(50, 50, (120, 120, 120))
    box = (15, 15, 65, 65)
    img = np.clip(_skin().astype(float) + np.random.default_rng(2).normal(0, 5, (80, 80, 1)), 0, 255)
    img = img.astype(np.uint8)
    stats = F.measure_scene(img, box)
    out, a, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, blur=False, noise_seed=7)
    inside = cv2.erode((a >= 0.999).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert 0.7 < H.noise_sigma(F.luma(out), inside) / stats.noise < 1.4
    again, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, blur=False, noise_seed=7)
    other, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, blur=False, noise_seed=8)
    assert np.array_equal(out, again) and not np.array_equal(out, other)


def test_skin_transfer_takes_the_face_colour():
    rgb, alpha = _occluder(colour=(250, 210, 60))  # a yellow emoji hand
    box = (25, 25, 55, 55)
    img = _skin(level=0.5)
    skin_mask = np.zeros(img.shape[:2], np.uint8)
    skin_mask[:20] = 255
    stats = F.measure_scene(img, box, skin_mask=skin_mask)
    out, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, skin=True, grain=False, blur=False,
                                     light=False)
    mean = out[alpha > 0.5].mean(0)
    assert np.allclose(mean, stats.skin, atol=6)


def test_shading_follows_a_light_gradient():
    img = _skin()
    img = np.clip(img * np.linspace(0.6, 1.2, 80)[None, :, None], 0, 255).astype(np.uint8)
    rgb, alpha = _occluder(40, 40, (150, 150, 150))
    box = (20, 20, 60, 60)
    stats = F.measure_scene(img, box)
    out, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, colour=False, grain=False, blur=False)
    left, right = out[15:25, 5:12].mean(), out[15:25, 28:35].mean()
    assert right > left * 1.1


def test_real_photo_statistics_are_plausible(photo_arrays):
    from occlusion_synth.landmarks import detect
    from occlusion_synth.preview import crop_face

    face = detect(photo_arrays["obama.jpg"], backend="dlib", max_side=640)[0]
    crop, lm = crop_face(photo_arrays["obama.jpg"], face.landmarks, 100)
    region = F.face_region_mask(lm, crop.shape[:2])
    stats = F.measure_scene(crop, (30, 50, 70, 90), region)
    assert not stats.grey and 0.5 < stats.light <= 1.1
    assert 0.5 < stats.noise < 8 and 0.0 < stats.blur < 3.0
    dark = np.clip(np.rint(crop * 0.35), 0, 255).astype(np.uint8)
    assert F.measure_scene(dark, (30, 50, 70, 90), region).light <= 0.6 * stats.light


def _reading_inside(out, alpha):
    inside = cv2.erode((alpha >= 0.999).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return H.noise_sigma(F.luma(out), inside)


def test_too_fine_texture_is_faded_to_the_photos_grain():
    rgb, alpha = _occluder(50, 50, (120, 120, 120))
    # fine speckle (crumbs, fabric): far more pixel-level detail than the photo's noise
    rgb += np.random.default_rng(8).normal(0, 20, (50, 50, 1)).astype(np.float32)
    box = (15, 15, 65, 65)
    img = _skin()  # noise sigma about 3 levels
    stats = F.measure_scene(img, box)
    kept, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, blur=False, grain=False)
    out, a, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, blur=False, noise_seed=1)
    assert _reading_inside(kept, alpha) > 3 * stats.noise  # the texture reads as heavy grain
    assert 0.5 < _reading_inside(out, a) / stats.noise < 1.5
    # the fade takes luma detail only, the same amount off the three channels
    assert np.allclose((out - kept)[..., 0], (out - kept)[..., 1], atol=1e-3)


def test_white_occluder_keeps_its_grain():
    rgb, alpha = _occluder(50, 50, (255, 255, 255))
    box = (15, 15, 65, 65)
    img = np.clip(_skin(level=1.15).astype(float) + np.random.default_rng(3).normal(0, 4, (80, 80, 1)), 0, 255)
    img = img.astype(np.uint8)
    stats = F.measure_scene(img, box)
    assert stats.light > 1.0  # a bright photo: the gain alone would push white past 255
    out, a, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, blur=False, colour=False, noise_seed=2)
    assert out.max() <= 255 and out[a >= 0.999].mean() > 240  # still white
    assert _reading_inside(out, a) > 0.6 * stats.noise  # not clipped away


def test_grain_is_read_on_the_face_the_occluder_leaves_visible():
    rng = np.random.default_rng(4)
    img = np.full((80, 80), 150.0) + rng.normal(0, 2.0, (80, 80))
    img[20:60, 20:60] += rng.normal(0, 15.0, (40, 40))  # speckled texture under the occluder
    img = np.repeat(np.clip(np.rint(img), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    box = (2, 2, 78, 78)  # hardly any face outside the box
    footprint = np.zeros((76, 76), np.float32)
    footprint[16:60, 16:60] = 1.0  # covers the textured square
    seen = F.measure_scene(img, box, footprint=footprint)
    blind = F.measure_scene(img, box)  # no footprint: the face under the box, texture included
    assert seen.noise == pytest.approx(2.0, rel=0.25)
    assert blind.noise > 1.5 * seen.noise


def test_grain_windows_replay_and_differ():
    from occlusion_synth.functional import patch_filters as PF

    a, b = PF.grain_field((40, 30), 12345), PF.grain_field((40, 30), 12345)
    assert np.array_equal(a, b) and not np.array_equal(a, PF.grain_field((40, 30), 12346))
    assert abs(float(a.std()) - 1.0) < 0.15
    big = PF.grain_field((PF.GRAIN_TILE + 5, 20), 7)  # larger than the tile: its own field
    assert big.shape == (PF.GRAIN_TILE + 5, 20) and np.isfinite(big).all()


@pytest.mark.parametrize("n", [41, 42])
def test_skin_median_is_numpys(n):
    pixels = np.random.default_rng(n).integers(0, 256, (n, 3)).astype(np.uint8)
    assert H._median_colour(pixels) == tuple(float(v) for v in np.median(pixels, axis=0))


def test_harmonise_leaves_its_inputs_alone():
    rgb, alpha = _occluder(40, 40, (255, 250, 240))
    rgb[::2] += 30.0
    box = (20, 20, 60, 60)
    img = _skin(level=1.1)
    cv2.rectangle(img, (5, 5), (20, 70), (60, 40, 30), -1)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    img = np.clip(img + np.random.default_rng(5).normal(0, 3, img.shape[:2] + (1,)), 0, 255).astype(np.uint8)
    before = rgb.copy(), alpha.copy(), img.copy()
    stats = F.measure_scene(img, box)
    assert stats.blur > 0.9 and stats.noise > 0
    out, a, nbox = F.harmonise_occluder(rgb, alpha, box, img, stats, noise_seed=9)
    assert np.array_equal(rgb, before[0]) and np.array_equal(alpha, before[1]) and np.array_equal(img, before[2])
    again, _, _ = F.harmonise_occluder(rgb, alpha, box, img, stats, noise_seed=9)
    assert np.array_equal(out, again) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 255


def test_statistics_of_a_large_photo():
    rng = np.random.default_rng(6)
    img = np.clip(_skin(600, 800).astype(float) + rng.normal(0, 2.5, (600, 800, 1)), 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(img)
    face = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(face, (400, 300), (250, 280), 0, 0, 360, 255, -1)
    stats = F.measure_scene(img, (250, 300, 550, 500), face)
    assert not stats.grey and 0.9 < stats.light <= 1.1
    assert stats.noise == pytest.approx(np.hypot(3.0, 2.5), rel=0.2)
