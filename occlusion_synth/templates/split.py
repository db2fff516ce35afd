"""A seeded train/test split of a template library by template id, for an unseen-occluder test.

``occsynth generate --holdout-templates F`` holds out a fraction ``F`` of every category's
templates: train and val pairs are occluded with the others (*seen*), and test pairs with either
set, chosen per sample (:func:`template_set`), so that one test split measures accuracy on
occluders seen in training and on occluders never seen. The split depends only on the template
names, the fraction and the seed (not on the order of loading), and is recorded in
``dataset.json`` (each template's ``set``)::

    from occlusion_synth.templates import load_templates
    from occlusion_synth.templates.split import split_library

    split = split_library(load_templates(), fraction=0.3, seed=0)
    split.seen, split.unseen            # two TemplateLibrary objects
    split.set_of("hand/hand_03")        # "seen" or "unseen"

``block`` occluders are procedural (no template), so they are drawn in *seen* pairs only: the
unseen-occluder pairs use the template categories alone.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from ..errors import TemplateError
from .library import TemplateLibrary

SEEN, UNSEEN = "seen", "unseen"
# share of the test samples occluded with held-out templates (the rest with seen ones)
UNSEEN_TEST_SHARE = 0.5


def _unit(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (SHA-256; the same on every machine and process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0 ** 64


@dataclass(frozen=True)
class TemplateSplit:
    """The two halves of a library.

    Attributes:
        seen: templates for train/val pairs (and the seen half of test).
        unseen: held-out templates (the unseen half of test only).
        fraction: the held-out fraction asked for, per category.
        seed: the seed of the split.
    """

    seen: TemplateLibrary
    unseen: TemplateLibrary
    fraction: float
    seed: int

    def set_of(self, name: str) -> Optional[str]:
        """``"seen"``, ``"unseen"`` or None (not in the library, e.g. a procedural block)."""
        if name in self.unseen:
            return UNSEEN
        if name in self.seen:
            return SEEN
        return None


def split_library(library: TemplateLibrary, fraction: float, seed: int = 0) -> TemplateSplit:
    """Hold out ``round(fraction * n)`` of each category's ``n`` templates (at least one and
    at most ``n - 1``, so that each category with two or more templates is in both halves).

    The templates of a category are ordered by a seeded hash of their name and the first ones are
    held out. A category with a single template stays seen (nothing can be held out of it).

    Raises:
        TemplateError: ``fraction`` not in (0, 1), or nothing could be held out.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise TemplateError(f"holdout fraction must be in (0, 1), got {fraction!r}")
    held: list = []
    for cat in library.categories():
        pool = sorted(library.by_category(cat), key=lambda t: (_unit(f"{seed}:holdout:{t.name}"), t.name))
        if len(pool) < 2:
            continue
        k = min(len(pool) - 1, max(1, round(fraction * len(pool))))
        held.extend(pool[:k])
    if not held:
        raise TemplateError("no template could be held out: every category has fewer than two templates")
    names = {t.name for t in held}
    return TemplateSplit(seen=TemplateLibrary([t for t in library if t.name not in names]),
                         unseen=TemplateLibrary(list(held)), fraction=float(fraction), seed=int(seed))


def template_set(split: str, sample_id: str, seed: int, fraction: float) -> Optional[str]:
    """Which half occludes a sample: None without a holdout (``fraction`` 0); ``seen`` for train
    and val; for test, ``unseen`` for a seeded :data:`UNSEEN_TEST_SHARE` of the sample ids."""
    if not fraction:
        return None
    if split != "test":
        return SEEN
    return UNSEEN if _unit(f"{seed}:template-set:{sample_id}") < UNSEEN_TEST_SHARE else SEEN


def mark_sets(templates: list[dict], split: Optional[TemplateSplit]) -> list[dict]:
    """dataset.json's template records with each one's ``set`` (unchanged without a split)."""
    if split is None:
        return templates
    return [{**t, "set": split.set_of(t["name"])} for t in templates]


__all__ = ["SEEN", "UNSEEN", "UNSEEN_TEST_SHARE", "TemplateSplit", "mark_sets", "split_library", "template_set"]
