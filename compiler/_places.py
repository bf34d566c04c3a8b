"""Names of local files and folders in a plan, the same from any directory and checkout.

A plan names a local path relative to the project root, in POSIX form, so compiling the
same spec from another working directory or another clone gives the same bytes and the
same digest. The project root is the repository holding the spec (the nearest folder
above it with `.git`), else the folder of the nearest trainspec.defaults.yaml above it
(it holds the defaults of every spec below it), else the spec's own folder. A path
outside the root is not part of the checkout, so it keeps its absolute name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Any

from trainspec.compiler.load._layers import DEFAULTS_FILE_NAME


@functools.lru_cache(maxsize=256)  # every spec of a repository shares the answer
def project_root(spec_dir: str | os.PathLike) -> str:
    """The project root (see the module docstring) of a spec in `spec_dir`, a real path."""
    start = os.path.realpath(spec_dir)
    defaults_dir = ""
    folder = start
    while True:
        if os.path.exists(os.path.join(folder, ".git")):  # a folder, or a file in a worktree
            return folder
        if not defaults_dir and os.path.isfile(os.path.join(folder, DEFAULTS_FILE_NAME)):
            defaults_dir = folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return defaults_dir or start
        folder = parent


def spec_root(spec_path: str | os.PathLike) -> str:
    """The project root of the spec file at `spec_path`: what the plan's local paths are
    relative to (`trainspec run` and `submit` resolve them against it)."""
    return project_root(os.path.dirname(os.path.realpath(spec_path)))


def plan_name(path: str, root: str) -> str:
    """`path` (absolute, or relative to the working directory) as a plan names it.

    Lexical: links are not resolved (the root and the spec's folder already are), so a
    server naming paths under its files root looks at nothing on its disk."""
    absolute = os.path.abspath(path)
    if root == os.sep:  # a server compile with no files root: nothing to take off
        return absolute
    relative = os.path.relpath(absolute, root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return absolute
    return relative.replace(os.sep, "/") if os.sep != "/" else relative


def resolve_plan_path(path: str, root: str | os.PathLike) -> str:
    """A local path from a plan, made absolute against the project root it was named in."""
    return os.path.normpath(os.path.join(root, path))


def portable_training(
    tree: Mapping[str, Any], training_path: Sequence[str], root: str
) -> Mapping[str, Any]:
    """`tree` with the training job's local source folder and data paths named relative
    to `root`; remote URIs are left alone. Returns a new tree; `tree` is not changed."""
    training = _at(tree, training_path)
    if not isinstance(training, Mapping):
        return tree
    changed: dict[str, Any] = {}
    framework = (training.get("model") or {}).get("framework")
    if framework and _is_local(framework.get("source_dir", "")):
        named = {**framework, "source_dir": plan_name(framework["source_dir"], root)}
        changed["model"] = {**training["model"], "framework": named}
    data = training.get("data")
    if data:
        channels = {}
        for name, channel in data.items():
            uri = channel.get("uri", "")
            channels[name] = {**channel, "uri": plan_name(uri, root)} if _is_local(uri) else channel
        changed["data"] = channels
    if not changed:
        return tree
    return _replace_at(tree, training_path, {**training, **changed})


def _is_local(uri: str) -> bool:
    return bool(uri) and not uri.startswith(("s3://", "https://"))


def _at(tree: Any, path: Sequence[str]) -> Any:
    for part in path:
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def _replace_at(tree: Mapping[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    if not path:
        return value
    head, rest = path[0], path[1:]
    return {**tree, head: _replace_at(tree[head], rest, value)}


__all__ = ["plan_name", "portable_training", "project_root", "resolve_plan_path", "spec_root"]
