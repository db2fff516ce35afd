"""``fer-pi`` command line: a click group whose sub-commands live one module each (lazy)."""
from __future__ import annotations

import click

from occlusion_synth.cli.common import LazyGroup
from occlusion_synth.errors import OcclusionSynthError

from ..errors import FerPiError

COMMANDS = {
    "pretrain": "fer_pi.cli.train_cmd:pretrain",
    "train": "fer_pi.cli.train_cmd:train",
    "evaluate": "fer_pi.cli.eval_cmd:evaluate",
    "predict": "fer_pi.cli.eval_cmd:predict",
    "bench": "fer_pi.cli.eval_cmd:bench",
    "ablate": "fer_pi.cli.ablate_cmd:ablate",
    "report": "fer_pi.cli.report_cmd:report",
    "tune": "fer_pi.cli.tune_cmd:tune",
}


@click.group(cls=LazyGroup, commands=COMMANDS, user_errors=(FerPiError, OcclusionSynthError),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="occlusion-synth")
def cli() -> None:
    """fer-pi: occluded-face expression recognition with clean faces as privileged information.

    Typical use: `fer-pi pretrain` then `fer-pi train --preset full`, `fer-pi evaluate`,
    `fer-pi predict`, `fer-pi report`; `fer-pi ablate` runs the paper's eight Table-1 rows.
    """


def main() -> None:
    """Console entry point."""
    cli(prog_name="fer-pi")


if __name__ == "__main__":
    main()
