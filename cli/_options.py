"""Click options that several commands share, spelled and documented once."""

from __future__ import annotations

from collections.abc import Callable

import click
from click.decorators import FC

DEFAULT_ROOT = ".trainspec/runs"

defaults_option = click.option(
    "--defaults",
    "defaults",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Organisation defaults file (repeatable, lowest first). Default: the "
    "nearest trainspec.defaults.yaml above the spec.",
)

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override one value, e.g. training.compute.instance_type=ml.g5.xlarge.",
)

root_option = click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=DEFAULT_ROOT,
    envvar="TRAINSPEC_ROOT",
    show_default=True,
    help=f"Folder of local jobs: <root>/<job>/ is the job's /opt/ml, <root>/jobs.db the "
    f"job store. Default: {DEFAULT_ROOT} (or $TRAINSPEC_ROOT).",
)


def autotune_mode_option(
    default: str = "explicit", help_text: str | None = None
) -> Callable[[FC], FC]:
    return click.option(
        "--autotune-mode",
        type=click.Choice(["explicit", "native"]),
        default=default,
        show_default=True,
        help=help_text
        or "explicit writes inferred ranges out; native sends SageMaker's Autotune with "
        "value hints.",
    )


stdin_filename_option = click.option(
    "--stdin-filename",
    metavar="PATH",
    default=None,
    help="For a spec read from `-`: the file it stands for. Its extension gives the "
    "format, its folder is where relative paths and trainspec.defaults.yaml are looked "
    "for, and messages and the plan name it, as if the spec were that file. Default: "
    "<stdin>, read as YAML (which reads JSON too).",
)
