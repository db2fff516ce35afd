"""Canonical expression labels shared by every reader and by fer_pi.

Canonical order (ARCHITECTURE.md): 0 Neutral, 1 Happiness, 2 Sadness, 3 Surprise, 4 Fear,
5 Disgust, 6 Anger, and 7 Contempt where a source has it. Each reader maps its own order to
this one with one explicit table.
"""
from __future__ import annotations

CANONICAL: tuple[str, ...] = (
    "neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt",
)
NUM_BASIC = 7  # the seven basic classes; contempt (7) is optional


def label_name(label: int) -> str:
    """Return the canonical class name of ``label`` (``0..7``)."""
    if not 0 <= int(label) < len(CANONICAL):
        raise ValueError(f"label must be in 0..{len(CANONICAL) - 1}, got {label!r}")
    return CANONICAL[int(label)]


def label_index(name: str) -> int:
    """Return the canonical index of a class name (case-insensitive, a few common aliases)."""
    aliases = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise",
               "fearful": "fear", "disgusted": "disgust", "neutrality": "neutral"}
    key = aliases.get(name.strip().lower(), name.strip().lower())
    if key not in CANONICAL:
        raise ValueError(f"unknown expression name {name!r}; expected one of {', '.join(CANONICAL)}")
    return CANONICAL.index(key)
