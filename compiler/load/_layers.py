"""The layers of a job: built-in defaults, defaults files and --set overrides, as data.

Each layer is a validated tree whose paths are those of the job it applies to: a defaults
file's `training` block lands on `training` for a training job and on `tuning.training`
for a tuning job.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    SpecError,
)
from trainspec.compiler._origin import Origin, OriginKind
from trainspec.compiler.catalog import data_file
from trainspec.compiler.check._validate import Validated, validate_layer
from trainspec.compiler.load._load import (
    MAX_BYTES,
    MAX_DEPTH,
    LoadedSource,
    load_source,
)
from trainspec.compiler.load._yaml import load_yaml

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
    moves: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
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
    ref = data_file("builtin.yaml")
    # Named as the file is in the repository, so `--explain` points somewhere real.
    return load_source("compiler/catalog/builtin.yaml", ref.read_bytes())


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
# bytes, so an edited file is simply a miss; bounded in entries and in each entry's size,
# key included (a server's callers choose both path and content); locked, as a server
# compiles on several threads.
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
    if len(path) + len(content) <= _DEFAULTS_CACHE_MAX_BYTES:
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
# An override is as cheap to reject as a spec file: its value goes through the same
# hardened loader (aliases, depth, nodes), and its path and size are bounded (a server
# takes overrides from any caller). The deepest field path of a spec has about 8 parts.
MAX_SET_PATH_CHARS = 1024
MAX_SET_PATH_PARTS = 32
# One value needs far fewer nodes than a whole spec: an alias bomb stops at 10,000 copied
# nodes (about 25 ms) instead of the file limit's 100,000.
MAX_SET_NODES = 10_000
MAX_SET_ALIASES = 100
MAX_SET_BYTES = MAX_BYTES
# The loader's refusals that are about cost, not syntax: these are errors, while text
# that is not YAML is taken as the string it is.
_LOAD_LIMITS = frozenset({"load.alias_limit", "load.too_deep", "load.too_large"})


def override_layer(overrides: Sequence[str], job: str) -> Layer:
    """Turn `--set path=value` strings into one layer; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    locations: dict[FieldPath, Location] = {}
    problems: list[Diagnostic] = []
    total = sum(len(text) for text in overrides)
    if total > MAX_SET_BYTES:
        raise SpecError([_set_limit(f"the overrides are {total} characters, over {MAX_SET_BYTES}")])
    for text in overrides:
        where = Location(f"--set {_shorten(text)}")
        path_text, sep, raw_value = text.partition("=")
        if len(path_text) > MAX_SET_PATH_CHARS or path_text.count(".") >= MAX_SET_PATH_PARTS:
            problems.append(
                _set_limit(
                    f"the field path is longer than {MAX_SET_PATH_CHARS} characters or "
                    f"{MAX_SET_PATH_PARTS} parts",
                    where,
                )
            )
            continue
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
            value = _set_value(raw_value)
        except SpecError as exc:
            problems.extend(
                dataclasses.replace(d, field_path=path_text, location=where)
                for d in exc.diagnostics
            )
            continue
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


def _set_value(raw: str) -> Any:
    """A `--set` value as YAML (as the same text in a spec file would load), or the raw
    text when it is not YAML; SpecError when it is over the loader's limits."""
    if not raw.strip():
        return ""
    document = "value:\n" + "".join(f"  {line}\n" for line in raw.splitlines())
    try:
        tree, _, _ = load_yaml(
            document,
            "--set",
            max_depth=MAX_DEPTH,
            max_nodes=MAX_SET_NODES,
            max_aliases=MAX_SET_ALIASES,
        )
    except SpecError as exc:
        if any(d.code in _LOAD_LIMITS for d in exc.diagnostics):
            raise
        return raw
    return tree["value"]


def _set_limit(message: str, where: Location | None = None) -> Diagnostic:
    return Diagnostic(
        "set.too_large",
        "",
        message,
        hint="put large or deep values in the spec or a defaults file",
        location=where or Location("--set"),
    )


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_path(text: str) -> list[str | int] | None:
    parts: list[str | int] = []
    for segment in text.split("."):
        match = _INDEX.match(segment)
        if not match:
            return None
        parts.append(match["name"])
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match["indexes"]))
    return parts
