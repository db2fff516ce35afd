"""``occsynth`` command line: a click group whose sub-commands live one module each.

Sub-command modules load only when used, so ``occsynth --help`` is fast. Library errors a
user can cause (:class:`~occlusion_synth.errors.OcclusionSynthError`) print one line and exit 2.
"""
from __future__ import annotations

import click

from ..errors import OcclusionSynthError
from .common import LazyGroup

# command name -> "module:attribute"
COMMANDS = {
    "demo-data": "occlusion_synth.cli.demo_data:demo_data",
    "landmarks": "occlusion_synth.cli.landmarks_cmd:landmarks",
    "templates": "occlusion_synth.cli.templates_cmd:templates",
    "preview": "occlusion_synth.cli.preview:preview",
    "generate": "occlusion_synth.cli.generate:generate",
    "merge": "occlusion_synth.cli.generate:merge",
    "export": "occlusion_synth.cli.export_cmd:export",
}


@click.group(cls=LazyGroup, commands=COMMANDS, user_errors=(OcclusionSynthError,),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="occlusion-synth")
def cli() -> None:
    """occlusion-synth: make paired clean/occluded face images for occlusion-robust FER.

    Typical use: `occsynth demo-data data/demo` builds a small expression dataset,
    `occsynth generate --src rafdb --root data/demo --templates assets --out out/` writes
    clean/occluded/mask pairs and a manifest, `occsynth preview` shows a contact sheet.
    """


def main() -> None:
    """Console entry point."""
    cli(prog_name="occsynth")


if __name__ == "__main__":
    main()
