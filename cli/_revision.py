"""A git revision's files in a temporary folder, so specs compile as they were then.

`git archive` (not a worktree) leaves the repository untouched. The copy gets an empty
`.git` marker so its project root is the copy's top, as the checkout's is: plans of both
sides name files the same way.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import click


def _git(args: list[str], cwd: str) -> bytes:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=False, timeout=300
        )
    except FileNotFoundError:
        raise click.UsageError("--against needs git, which is not on PATH") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise click.UsageError(f"git {' '.join(args)}: {message[-1] if message else 'failed'}")
    return done.stdout


def repository_root(path: str) -> str:
    """The top folder of the git repository holding `path` (a file or folder)."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return os.path.realpath(_git(["rev-parse", "--show-toplevel"], folder).decode().strip())


def export_revision(root: str, revision: str, target: str) -> str:
    """Write the files of `revision` of the repository at `root` into `target`; return the
    full commit id."""
    if revision.startswith("-"):
        raise click.UsageError(f"--against {revision!r} is not a revision")
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], root)
    except click.UsageError:
        raise click.UsageError(
            f"--against {revision!r}: no such revision in the repository at {root}"
        ) from None
    archive = _git(["archive", "--format=tar", commit.decode().strip()], root)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    open(os.path.join(target, ".git"), "w").close()
    return commit.decode().strip()
