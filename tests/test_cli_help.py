"""Every command of both CLIs (``occsynth`` and ``fer-pi``) documents every option in ``--help``."""
from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from fer_pi.cli import cli as fer_cli
from occlusion_synth.cli import cli as occ_cli

GROUPS = {"occsynth": occ_cli, "fer-pi": fer_cli}


def _commands():
    for prog, group in GROUPS.items():
        ctx = click.Context(group, info_name=prog)
        for name in group.list_commands(ctx):
            yield pytest.param(prog, group, name, id=f"{prog} {name}")


def _flat(text: str) -> str:
    """Whitespace-normalised, and click's line breaks after hyphens ("pre- training") undone."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


@pytest.mark.parametrize("prog,group,name", list(_commands()))
def test_every_option_has_a_description_in_help(prog, group, name):
    ctx = click.Context(group, info_name=prog)
    command = group.get_command(ctx, name)
    assert command is not None, f"`{prog} {name}` is listed but its module is missing (not built)"
    assert (command.help or command.short_help or "").strip(), f"`{prog} {name}` has no description"
    result = CliRunner().invoke(group, [name, "--help"], prog_name=prog)
    assert result.exit_code == 0, result.output
    shown = _flat(result.output)
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    for opt in options:
        text = (opt.help or "").strip()
        assert text, f"`{prog} {name}` option {'/'.join(opt.opts)} has no help text"
        assert _flat(text)[:40] in shown, f"help of {'/'.join(opt.opts)} missing from `{prog} {name} --help`"
        assert opt.opts[0] in shown


def test_both_groups_list_their_commands():
    assert {"demo-data", "generate", "preview"} <= set(occ_cli.list_commands(click.Context(occ_cli)))
    assert {"train", "evaluate", "predict", "bench", "ablate"} <= set(fer_cli.list_commands(click.Context(fer_cli)))
