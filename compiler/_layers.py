"""The layers of a job: built-in defaults, defaults files and --set overrides, as data.

Each layer is a validated tree whose paths are those of the job it applies to: a defaults
file's `training` block lands on `training` for a training job and on `tuning.training`
for a tuning job.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    SpecError,
)
from trainspec.compiler._load import LoadedSource, load_source
from trainspec.compiler._origin import Origin, OriginKind
from trainspec.compiler._validate import Validated, validate_layer

DEFAULTS_FILE_NAME = "trainspec.defaults.yaml"


@dataclass(frozen=True)
class Layer:
    """A tree re-rooted onto the job's paths, with an origin for each of its values."""

    kind: OriginKind
    tree: Mapping[str, Any]
    locations: Mapping[FieldPath, Location]
    source: str = ""  # the catalog entry or `--set` text, when not a file
    catalog: Mapping[str, Any] | None = None  # a defaults file's `catalog` block
    catalog_locations: Mapping[FieldPath, Location] | None = None
    # Origins already made: the built-in, catalog and defaults layers are cached and
    # resolve asks them for the same paths on every compile.
    _origins: dict[FieldPath, Origin] = field(default_factory=dict, compare=False, repr=False)

    def origin(self, path: FieldPath) -> Origin:
        origin = self._origins.get(path)
        if origin is None:
            location = None
            for end in range(len(path), -1, -1):
                location = self.locations.get(path[:end])
                if location is not None:
                    break
            origin = self._origins[path] = Origin(self.kind, location, self.source)
        return origin


def _reroot(layer: Validated, job: str) -> tuple[dict, dict[FieldPath, Location]]:
    """Move a defaults-shaped layer's `training`/`tuning` blocks onto a job's paths."""
    tree: dict[str, Any] = {}
    locations: dict[FieldPath, Location] = {}
    moves: list[tuple[FieldPath, FieldPath]] = []
    if job == "training":
        moves.append((("training",), ("training",)))
    else:
        moves.append((("tuning",), ("tuning",)))
        moves.append((("training",), ("tuning", "training")))
    for source, target in moves:
        value = layer.tree.get(source[0])
        if value is None:
            continue
        node = tree
        for part in target[:-1]:
            node = node.setdefault(part, {})
        if target[-1] in node and isinstance(node[target[-1]], dict):
            node[target[-1]] = {**value, **node[target[-1]]}
        else:
            node[target[-1]] = value
        for path, location in layer.locations.items():
            if path[: len(source)] == source:
                locations[target + path[len(source) :]] = location
    return tree, locations


@functools.cache
def _builtin_source() -> LoadedSource:
    ref = resources.files("trainspec.compiler.catalog").joinpath("builtin.yaml")
    return load_source("trainspec/compiler/catalog/builtin.yaml", ref.read_bytes())


@functools.cache
def builtin_layer(job: str) -> Layer:
    source = _builtin_source()
    tree = {k: v for k, v in source.tree.items() if k in ("training", "tuning")}
    validated = Validated(source.path, tree, source.locations, source.key_locations)
    rerooted, locations = _reroot(validated, job)
    return Layer(OriginKind.BUILTIN, rerooted, locations, source="builtin")


def defaults_layer(source: LoadedSource, job: str) -> Layer:
    validated = validate_layer(
        source.path, source.tree, source.locations, source.key_locations, kind="defaults"
    )
    tree, locations = _reroot(validated, job)
    return Layer(
        OriginKind.DEFAULTS,
        tree,
        locations,
        catalog=validated.tree.get("catalog"),
        catalog_locations=validated.locations,
    )


# A whole repository compiles against one or two defaults files: loading and validating
# them once per content, not once per spec, is a third of a compile saved. Keyed by the
# bytes, so an edited file is simply a miss; bounded in entries and entry size, as a
# server sees many clients; locked, as a server compiles on several threads.
_DEFAULTS_CACHE: dict[tuple[str, str | bytes, str], Layer] = {}
_DEFAULTS_CACHE_ENTRIES = 64
_DEFAULTS_CACHE_MAX_BYTES = 64 * 1024
_DEFAULTS_CACHE_LOCK = threading.Lock()


def defaults_layer_of(path: str, content: str | bytes, job: str) -> Layer:
    """`defaults_layer(load_source(path, content), job)`, cached; SpecError on a bad file."""
    key = (path, content, job)
    layer = _DEFAULTS_CACHE.get(key)
    if layer is not None:
        return layer
    layer = defaults_layer(load_source(path, content), job)
    if len(content) <= _DEFAULTS_CACHE_MAX_BYTES:
        with _DEFAULTS_CACHE_LOCK:
            while len(_DEFAULTS_CACHE) >= _DEFAULTS_CACHE_ENTRIES:
                del _DEFAULTS_CACHE[next(iter(_DEFAULTS_CACHE))]
            _DEFAULTS_CACHE[key] = layer
    return layer


def find_defaults_file(spec_dir: str | os.PathLike) -> str | None:
    """The nearest trainspec.defaults.yaml in the spec's (real) folder or any folder above."""
    folder = os.fspath(spec_dir)
    while True:
        candidate = os.path.join(folder, DEFAULTS_FILE_NAME)
        if os.path.isfile(candidate):
            return _as_user_names_it(candidate, os.getcwd())
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


@functools.lru_cache(maxsize=256)  # the same file and folder for every spec of a repository
def _as_user_names_it(path: str, cwd: str) -> str:
    """`path` relative to `cwd` when it lies below it, else as it is."""
    relative = os.path.relpath(path, cwd)
    return path if relative.startswith("..") else relative


_INDEX = re.compile(r"^(?P<name>[^\[\]]+)(?P<indexes>(\[\d+\])*)$")


def override_layer(overrides: Sequence[str], job: str) -> Layer:
    """Turn `--set path=value` strings into one layer; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    locations: dict[FieldPath, Location] = {}
    problems: list[Diagnostic] = []
    for text in overrides:
        where = Location(f"--set {text}")
        path_text, sep, raw_value = text.partition("=")
        path = _parse_path(path_text.strip()) if sep else None
        if not path:
            problems.append(
                Diagnostic(
                    "set.syntax",
                    "",
                    f"cannot read override {text!r}",
                    hint="write --set field.path=value, e.g. "
                    "training.compute.instance_type=ml.g5.xlarge",
                    location=where,
                )
            )
            continue
        if path[0] not in ("training", "tuning") or (
            path[0] != job and not (job == "tuning" and path[0] == "training")
        ):
            problems.append(
                Diagnostic(
                    "set.wrong_job",
                    path_text,
                    f"this is a {job} job; the path must start with `{job}.`",
                    location=where,
                )
            )
            continue
        try:
            value = yaml.safe_load(raw_value) if raw_value.strip() else ""
        except yaml.YAMLError:
            value = raw_value
        node: Any = tree
        for index, part in enumerate(path[:-1]):
            following = path[index + 1]
            if isinstance(part, int):
                problems.append(
                    Diagnostic(
                        "set.list_index",
                        path_text,
                        "list items cannot be set one by one",
                        hint="set the whole list, e.g. --set training.network.subnets=[subnet-1]",
                        location=where,
                    )
                )
                break
            node = node.setdefault(part, [] if isinstance(following, int) else {})
        else:
            node[path[-1]] = value
            locations[tuple(path)] = where
            for prefix_end in range(1, len(path)):
                locations.setdefault(tuple(path[:prefix_end]), where)
    if problems:
        raise SpecError(problems)
    validated = validate_layer("--set", tree, locations, locations, kind="defaults")
    rerooted, rerooted_locations = _reroot(validated, job)
    return Layer(OriginKind.OVERRIDE, rerooted, rerooted_locations, source="--set")


def _parse_path(text: str) -> list[str | int] | None:
    parts: list[str | int] = []
    for segment in text.split("."):
        match = _INDEX.match(segment)
        if not match:
            return None
        parts.append(match["name"])
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match["indexes"]))
    return parts
