"""Kernels of occlusion_synth.functional: geometry, warps, blending, colour, masks, blocks."""
import numpy as np
import pytest

from occlusion_synth import functional as F
from occlusion_synth.landmarks.schemes import canonical_landmarks


def _rgba_disc(size=40, colour=(30, 90, 220)):
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(xx - (size - 1) / 2, yy - (size - 1) / 2)
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.clip((size / 2 - 1 - r) * 255, 0, 255).astype(np.uint8)
    return rgba


def test_similarity_matrix_moves_anchor_and_rotates_clockwise_for_positive_angle():
    m = F.similarity_matrix((10, 5), (100, 50), angle_deg=90, scale=2.0)
    np.testing.assert_allclose(F.transform_points(m, [(10, 5)]), [(100, 50)], atol=1e-9)
    # +x in the template goes to +y in the image (clockwise on screen, y down), length doubled
    np.testing.assert_allclose(F.transform_points(m, [(11, 5)]), [(100, 52)], atol=1e-9)


def test_similarity_from_points_recovers_a_known_transform():
    m = F.similarity_matrix((0, 0), (7, -3), 33.0, 1.7)
    src = np.random.default_rng(0).uniform(-20, 20, (10, 2))
    np.testing.assert_allclose(F.similarity_from_points(src, F.transform_points(m, src)), m, atol=1e-9)


def test_render_affine_no_dark_fringe_and_box():
    rgba = _rgba_disc(40, (255, 255, 255))
    rgba[rgba[..., 3] == 0, :3] = 0  # garbage colour under zero alpha must not bleed in
    m = F.similarity_matrix((19.5, 19.5), (50, 50), 17.0, 0.9)
    rgb, alpha, box = F.render_affine(rgba, m, (100, 100))
    x0, y0, x1, y1 = box
    assert rgb.shape[:2] == alpha.shape == (y1 - y0, x1 - x0)
    edge = (alpha > 0.02) & (alpha < 0.5)
    assert edge.any() and rgb[edge].min() > 250  # premultiplied warp: edges stay white
    assert 0.8 * np.pi * 18**2 * 0.81 < alpha.sum() < 1.2 * np.pi * 18**2 * 0.81


def test_render_affine_shrink_is_antialiased():
    # a fine stripe pattern shrunk 8x must average to grey instead of aliasing to stripes
    rgba = np.zeros((160, 160, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:, ::2, :3] = 255
    rgb, alpha, _ = F.render_affine(rgba, F.similarity_matrix((0, 0), (10, 10), 0, 1 / 8), (64, 64))
    inner = rgb[alpha > 0.99]
    assert inner.size and np.all(np.abs(inner - 127.5) < 20)


def test_render_outside_image_is_none():
    assert F.render_affine(_rgba_disc(), F.similarity_matrix((0, 0), (500, 500), 0, 1), (50, 50)) is None


def test_render_tps_puts_anchor_points_on_targets():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[..., 3] = 255
    src = np.array([(10, 10), (90, 10), (10, 90), (90, 90), (50, 50)], float)
    for x, y in src.astype(int):  # a marked pixel at each anchor
        rgba[y - 1:y + 2, x - 1:x + 2, :3] = 255
    dst = src * 1.5 + (20, 5)
    dst[4] += (6, -4)  # bend the middle
    rgb, alpha, (x0, y0, x1, y1) = F.render_tps(rgba, src, dst, (200, 200), regularization=0.0)
    for x, y in dst:
        xi, yi = int(round(x)) - x0, int(round(y)) - y0
        assert rgb[yi - 1:yi + 2, xi - 1:xi + 2].max() > 200, (x, y)


def test_feather_never_grows_footprint():
    alpha = np.zeros((30, 30), np.float32)
    alpha[10:20, 10:20] = 1.0
    out = F.feather_alpha(alpha, 1.5)
    assert np.all(out <= alpha) and out[15, 15] > 0.99 and 0 < out[10, 15] < 1


def test_composite_untouched_outside_footprint_and_shadow():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)
    alpha = np.zeros((20, 20), np.float32)
    alpha[5:15, 5:15] = 1.0
    rgb = np.full((20, 20, 3), 255.0, np.float32)
    box = (10, 10, 30, 30)
    shadow = F.shadow_alpha(alpha, box, image.shape[:2], (3.0, 4.0), 2.0, 0.4)
    out = F.composite(image, rgb, alpha, box, shadow)
    touched = np.zeros((60, 60), bool)
    touched[10:30, 10:30] |= alpha > 0
    shade, (sx0, sy0, sx1, sy1) = shadow
    touched[sy0:sy1, sx0:sx1] |= shade > 0
    assert np.array_equal(out[~touched], image[~touched])
    assert np.all(out[15:25, 15:25] == 255)
    assert (out[26:32, 20].astype(int) <= image[26:32, 20]).all()  # shadow only darkens


def test_footprint_mask_and_inside_fraction():
    alpha = np.array([[0.0, 0.003, 0.49, 1.0]], np.float32)
    assert F.footprint_mask(alpha).tolist() == [[0, 255, 255, 255]]  # every non-zero alpha
    face = np.zeros((4, 4), np.uint8)
    face[:, :2] = 255
    foot = np.zeros((4, 4), np.uint8)
    foot[:, 1:3] = 255
    assert F.inside_fraction(foot, face) == 0.5
    assert F.inside_fraction(foot[:, 1:3], face, (1, 0, 3, 4)) == 0.5
    assert F.inside_fraction(np.zeros((4, 4)), face) == 0.0


def test_face_region_and_fraction():
    lm = canonical_landmarks(200)
    face = F.face_region_mask(lm, (200, 200))
    assert face.dtype == np.uint8 and set(np.unique(face)) == {0, 255}
    # contains the eyes, nose, mouth; the forehead above the brows is included
    for i in (30, 36, 45, 51, 57):
        assert face[int(lm[i, 1]), int(lm[i, 0])] == 255
    brow_y = lm[17:27, 1].min()
    assert face[int(brow_y) - 8, 100] == 255 and face[2, 100] == 0
    half = np.zeros_like(face)
    half[:, :100] = 255
    assert 0.4 < F.occluded_fraction(half, face) < 0.6
    assert F.occluded_fraction(half[:, :100], face, (0, 0, 100, 200)) == F.occluded_fraction(half, face)


def test_alpha_to_mask_threshold():
    alpha = np.array([[0.0, 0.49, 0.5, 1.0]], np.float32)
    assert F.alpha_to_mask(alpha).tolist() == [[0, 0, 255, 255]]


@pytest.mark.parametrize("shape,kind,side", [((48, 48), "r8", 8), ((48, 48), "r24", 24),
                                             ((96, 120), "r16", 32), ((224, 224), "r8", 37)])
def test_block_side_scales_with_image(shape, kind, side):
    assert F.block_side(kind, shape) == side


@pytest.mark.parametrize("fill", ["grey", "noise", "colour"])
def test_fill_block(fill):
    image = np.zeros((48, 48, 3), np.uint8)
    out, mask = F.fill_block(image, (4, 6, 20, 22), fill, colour=(1, 2, 3), noise_seed=5)
    assert mask.sum() == 16 * 16 * 255
    assert np.array_equal(out[mask == 0], image[mask == 0])
    again, _ = F.fill_block(image, (4, 6, 20, 22), fill, colour=(1, 2, 3), noise_seed=5)
    assert np.array_equal(out, again)
    with pytest.raises(ValueError, match="fill"):
        F.fill_block(image, (0, 0, 2, 2), "plaid")


def test_eye_and_mouth_blocks_cover_their_landmarks():
    lm = canonical_landmarks(96)
    for kind, idx in (("eyes", range(36, 48)), ("mouth", range(48, 68))):
        x0, y0, x1, y1 = F.block_rect(kind, lm, (96, 96))
        pts = lm[list(idx)]
        assert (pts[:, 0] >= x0).all() and (pts[:, 0] < x1).all()
        assert (pts[:, 1] >= y0).all() and (pts[:, 1] < y1).all()
