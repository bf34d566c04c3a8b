"""The `trainspec` command line: a click group whose commands live in their own modules.

Commands are imported only when used, so `trainspec compile` never imports torch or grpc.
"""

from __future__ import annotations

import importlib

import click
from trainspec import __version__

# command name -> "module:attribute" (modules under trainspec.*)
_COMMANDS = {
    "validate": "trainspec._cmd_validate:validate",
    "compile": "trainspec._cmd_compile:compile_command",
    "schema": "trainspec._cmd_validate:schema",
    "catalog": "trainspec._cmd_compile:catalog",
    "serve": "trainspec._cmd_serve:serve",
    "run": "trainspec._cmd_run:run",
    "submit": "trainspec._cmd_sagemaker:submit",
    "describe": "trainspec._cmd_sagemaker:describe",
    "stop": "trainspec._cmd_sagemaker:stop",
    "jobs": "trainspec._cmd_run:jobs",
    "diff": "trainspec._cmd_diff:diff",
    "lock": "trainspec._cmd_diff:lock",
}


# Commands that are offline and log nothing (nor do the modules they use): the pre-commit
# hooks skip importing logging (~3 ms); `compile --preflight` (boto3) configures it itself.
# tests/cli/test_startup_imports.py checks that they never load it.
_OFFLINE_SILENT = frozenset({"validate", "compile"})


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = _COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # the command is not part of this build
                return None
            raise
        return getattr(module, attribute)

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if name and not name.startswith("-") and self._load(name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            ctx.fail(f"No such command '{name}'.{hint}")
        return super().resolve_command(ctx, args)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trainspec")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    envvar="TRAINSPEC_LOG_LEVEL",
    help="Log messages of this level and above on stderr (env TRAINSPEC_LOG_LEVEL); "
    "`serve` logs JSON lines at info unless this asks for debug.",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """Training jobs as code: validate, compile, serve and run job specs.

    Exit codes: 0 success, 1 invalid input (every problem is printed), 2 usage error,
    3 internal error (a bug in trainspec or its catalogs), 4 infrastructure failure (a
    database unreachable, a disk full).

    Shell completion: eval "$(_TRAINSPEC_COMPLETE=bash_source trainspec)" in ~/.bashrc
    (zsh_source, fish_source for the other shells).
    """
    if ctx.invoked_subcommand not in _OFFLINE_SILENT:
        configure_logging(log_level)


def configure_logging(log_level: str) -> None:
    """Log records of `log_level` and above on stderr, as `--log-level` asks."""
    import logging

    logging.basicConfig(
        level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s", force=True
    )


def main() -> None:
    cli()
