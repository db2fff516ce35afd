"""Occluder template libraries: loading, validating, and building the shipped ``assets/``.

Public API::

    from occlusion_synth.templates import load_templates
    lib = load_templates()                      # the shipped library (assets/)
    lib = load_templates("my_templates/", categories=["hand"])
    for tpl in lib.by_category("mask"):
        idx, pts = tpl.landmark_anchors()       # template points that go on 68-landmarks idx

See docs/templates.md for the on-disk format and conventions.
"""
from __future__ import annotations

from .library import (CATEGORIES, DEFAULT_SCALE_RANGES, MASK_ANCHOR_LANDMARKS, MIRROR_68, REQUIRED_MASK_ANCHORS,
                      Template, TemplateLibrary, assets_dir, guess_mask_anchors, load_templates, read_template)
from .validate import Problem, validate_templates

__all__ = [
    "CATEGORIES",
    "DEFAULT_SCALE_RANGES",
    "MASK_ANCHOR_LANDMARKS",
    "MIRROR_68",
    "REQUIRED_MASK_ANCHORS",
    "Problem",
    "Template",
    "TemplateLibrary",
    "assets_dir",
    "guess_mask_anchors",
    "load_templates",
    "read_template",
    "validate_templates",
]
