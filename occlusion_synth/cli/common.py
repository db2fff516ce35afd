"""Pieces shared by the ``occsynth`` and ``fer-pi`` command lines (a public module: both packages use it).

So that an option means the same thing in every command, its parser lives here once
(``--categories food,mask``: :func:`parse_categories`), with one-line user errors
(:class:`UserError`, exit 2) and the lazily imported command groups (:class:`LazyGroup`).
"""
from __future__ import annotations

import importlib

import click


def __getattr__(name: str):
    # CATEGORY_CHOICES is occlusion_synth.transforms.CATEGORIES (its one home), loaded on use so
    # that `occsynth --help` does not import OpenCV
    if name == "CATEGORY_CHOICES":
        from ..transforms import CATEGORIES

        return CATEGORIES
    raise AttributeError(name)


def parse_categories(ctx, param, value: str) -> tuple[str, ...]:
    """click callback: ``"food,mask"`` -> ``("food", "mask")``, rejecting unknown categories."""
    from ..transforms import CATEGORIES

    cats = tuple(c.strip() for c in value.split(",") if c.strip())
    bad = [c for c in cats if c not in CATEGORIES]
    if bad or not cats:
        raise click.BadParameter(f"unknown categories {bad}; choose from {','.join(CATEGORIES)}")
    return cats


class UserError(click.ClickException):
    """A user mistake (bad path, bad value, broken input): one line on stderr, exit status 2."""

    exit_code = 2


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used.

    ``commands`` maps a command name to ``"module:attribute"``. Errors of ``user_errors`` types
    raised anywhere inside a command become :class:`UserError` (message, exit 2, no traceback).
    """

    def __init__(self, *args, commands: dict[str, str], user_errors: tuple[type, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy = dict(commands)
        self._user_errors = user_errors

    def list_commands(self, ctx):
        return sorted(self._lazy)

    def get_command(self, ctx, name):
        target = self._lazy.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except self._user_errors as exc:
            raise UserError(str(exc)) from None


def coverage_option(ctx, param, value):
    """Click callback for ``--coverage A-B`` (every command uses this one parser)."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value.split("-"))
    except ValueError:
        raise click.BadParameter(f"expected A-B with 0 <= A <= B <= 1 (e.g. 0.1-0.5), got {value!r}") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise click.BadParameter(f"expected 0 <= A <= B <= 1, got {value!r}")
    return lo, hi
