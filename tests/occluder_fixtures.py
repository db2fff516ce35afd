"""A small in-memory template library shared by the placement and transform tests."""
import cv2
import numpy as np

from occlusion_synth.templates import Template, TemplateLibrary, guess_mask_anchors


def blob(h, w, colour, rect=False, texture=False):
    """An RGBA blob with an anti-aliased edge (made at 4x and area-downscaled).

    ``texture`` adds a faint stripe to the green channel, so changed pixels are never flat.
    """
    a = np.zeros((h * 4, w * 4), np.uint8)
    if rect:
        cv2.rectangle(a, (6, 6), (w * 4 - 7, h * 4 - 7), 255, -1)
    else:
        cv2.ellipse(a, (w * 2, h * 2), (w * 2 - 6, h * 2 - 6), 0, 0, 360, 255, -1)
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = colour
    if texture:
        rgba[..., 1] = np.clip(rgba[..., 1].astype(int) + 3 * (np.arange(w)[None] % 5), 0, 255)
    rgba[..., 3] = cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)
    return rgba


def toy_library(texture=False, drink_size=(80, 40), drink_center=(19.5, 39.5)):
    """One food, hand, drink (``drink_size`` h, w) and mask template, drawn as blobs."""
    mask = blob(90, 150, (120, 180, 230), texture=texture)
    anchors = {**guess_mask_anchors(mask[..., 3]), "center": (74.5, 44.5)}
    return TemplateLibrary([
        Template("food/apple", "food", blob(50, 50, (200, 30, 30), texture=texture), {"center": (24.5, 24.5)},
                 (0.9, 1.6)),
        Template("hand/palm", "hand", blob(80, 60, (205, 160, 130), texture=texture), {"center": (29.5, 39.5)},
                 (1.6, 2.6)),
        Template("drink/cup", "drink", blob(*drink_size, (40, 80, 200), rect=True, texture=texture),
                 {"center": drink_center}, (1.0, 1.8)),
        Template("mask/plain", "mask", mask, anchors, (2.1, 2.6)),
    ])
