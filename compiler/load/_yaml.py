"""The YAML part of `load`: YAML 1.1 text to a plain tree with a location for every node.

The tree is built straight from the parser's event stream (libyaml when available), not
through PyYAML's composer or constructor: that keeps it iterative (no recursion to blow
on `[[[[...`), lets the limits on depth and alias expansion trip before any work is
done, gives every key and value its line and column, and never constructs a tag.
"""

from __future__ import annotations

import functools
from typing import Any, NoReturn

import yaml
from trainspec.compiler._diagnostics import (
    Diagnostic,
    FieldPath,
    Location,
    SpecError,
    format_path,
)
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

try:  # libyaml's parser is several times faster than the pure-Python one.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = ["load_yaml"]

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
_TIMESTAMP, _MERGE, _MAP, _SEQ = _T + "timestamp", _T + "merge", _T + "map", _T + "seq"
# Tags whose scalars stay the text the user wrote: timestamps are kept as strings (a
# spec has no date type), and `=` / `!`-like values are just text here.
_AS_TEXT = frozenset({_STR, _TIMESTAMP, _T + "value", _T + "yaml"})
_SCALAR_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})
# The implicit tags of plain ints, floats, bools and nulls.
_IMPLICIT = frozenset({_INT, _FLOAT, _BOOL, _NULL})

# The YAML 1.1 implicit resolvers safe_load uses, by first character.
_WILDCARD = tuple(Resolver.yaml_implicit_resolvers.get(None, ()))
_RESOLVERS: dict[str, tuple] = {
    first: (*resolvers, *_WILDCARD)
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    if first is not None
}
_CONSTRUCTOR = SafeConstructor()
_NO_KEY = object()  # a mapping frame waiting for its next key
# Location((path, line, column)) without the NamedTuple's Python-level __new__: the loader
# makes two per node (value and key), the most frequent call of a compile.
_location = functools.partial(tuple.__new__, Location)
_MERGE_KEY = object()  # a mapping frame whose pending key is `<<`


def load_yaml(
    text: str, name: str, *, max_depth: int, max_nodes: int, max_aliases: int
) -> tuple[Any, dict[FieldPath, Location], dict[FieldPath, Location]]:
    """Parse one YAML document into (tree, value locations, key locations); SpecError on failure."""
    builder = _Builder(text, name, max_depth, max_nodes, max_aliases)
    return builder.run()


class _Frame:
    """An open mapping or sequence."""

    __slots__ = (
        "anchor",
        "is_map",
        "key",
        "key_loc",
        "keys",
        "log_start",
        "merge_start",
        "merges",
        "path",
        "value",
    )

    def __init__(self, is_map: bool, path: FieldPath, anchor: str | None, log_start: int):
        self.is_map = is_map
        self.path = path
        self.anchor = anchor
        self.log_start = log_start
        self.value: Any = {} if is_map else []
        self.key: Any = _NO_KEY
        self.key_loc: Location | None = None
        self.keys: dict[str, Location] = {}  # explicit keys so far, for duplicate checks
        self.merge_start = 0
        self.merges: list[tuple[Any, list]] = []  # `<<` values with their relative log


class _Anchor:
    """A finished anchored node: its value and its log entries relative to itself."""

    __slots__ = ("depth", "entries", "value")

    def __init__(self, value: Any, entries: list, depth: int):
        self.value = value
        self.entries = entries
        self.depth = depth


class _Builder:
    def __init__(self, text: str, name: str, max_depth: int, max_nodes: int, max_aliases: int):
        self.text = text
        self.name = name
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self.max_aliases = max_aliases
        self.stack: list[_Frame] = []
        # (path, value location, key location or None) for every node, in document order.
        self.log: list[tuple[FieldPath, Location, Location | None]] = []
        self.anchors: dict[str, _Anchor | None] = {}  # None: anchored node still open
        self.errors: list[Diagnostic] = []
        self.nodes = 0
        self.aliases = 0
        self.documents = 0
        self.root: Any = _NO_KEY

    # -- driver ---------------------------------------------------------------------------

    def run(self) -> tuple[Any, dict[FieldPath, Location], dict[FieldPath, Location]]:
        scalar, start, end, other = self._scalar, self._start, self._end, self._event
        loader = _Loader(self.text)
        try:
            # get_event() directly (not yaml.parse's generator): the loop is the hot path.
            get_event = loader.get_event
            while True:
                event = get_event()
                kind = type(event)
                if kind is ScalarEvent:
                    scalar(event)
                elif kind is MappingStartEvent:
                    start(event, True)
                elif kind is SequenceStartEvent:
                    start(event, False)
                elif kind is MappingEndEvent or kind is SequenceEndEvent:
                    end()
                else:
                    other(event)
                    if kind is StreamEndEvent:
                        break
        except yaml.YAMLError as error:
            raise SpecError([*self.errors, self._syntax_error(error)]) from None
        finally:
            loader.dispose()
        if self.errors:
            raise SpecError(self.errors)
        locations = {path: loc for path, loc, _ in self.log}
        key_locations = {path: key for path, _, key in self.log if key is not None}
        return self.root, locations, key_locations

    def _event(self, event: Any) -> None:
        kind = type(event)
        if kind is AliasEvent:
            self._alias(event)
        elif kind is DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                self._fail(
                    "load.multiple_documents",
                    event.start_mark,
                    "the file holds more than one yaml document",
                    "put one job per file; remove the `---` separator and what follows it",
                )
        elif kind is StreamEndEvent and self.documents == 0:
            self._fail(
                "load.empty",
                event.start_mark,
                "the file is empty; a spec needs `training:` or `tuning:`",
                "start the file with `training:` or `tuning:`",
                at_start=True,
            )

    # -- nodes ----------------------------------------------------------------------------

    def _loc(self, mark: Any) -> Location:
        return _location((self.name, mark.line + 1, mark.column + 1))

    def _begin_node(self, mark: Any) -> FieldPath:
        """Count a new value node and log its path and location."""
        self.nodes += 1
        if self.nodes > self.max_nodes:
            self._fail(
                "load.too_large",
                mark,
                f"the document has more than {self.max_nodes} values",
                "a spec is a small file; split it up",
            )
        loc = self._loc(mark)
        if not self.stack:
            self.log.append(((), loc, None))
            return ()
        top = self.stack[-1]
        if top.is_map:
            if top.key is _MERGE_KEY:
                # Built aside under `<<` and folded into the mapping when it closes.
                path = (*top.path, "<<")
                self.log.append((path, loc, None))
                return path
            path = (*top.path, top.key)
            self.log.append((path, loc, top.key_loc))
        else:
            path = (*top.path, len(top.value))
            self.log.append((path, loc, None))
        return path

    def _attach(self, value: Any) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if not top.is_map:
            top.value.append(value)
        elif top.key is _MERGE_KEY:
            cut = len(top.path) + 1
            entries = [(p[cut:], loc, key) for p, loc, key in self.log[top.merge_start :]]
            del self.log[top.merge_start :]
            top.merges.append((value, entries))
            top.key = _NO_KEY
        else:
            top.value[top.key] = value
            top.key = _NO_KEY

    def _expecting_key(self) -> bool:
        return bool(self.stack) and self.stack[-1].is_map and self.stack[-1].key is _NO_KEY

    def _scalar(self, event: Any) -> None:
        tag = event.tag
        plain = event.implicit[0]
        if tag is None or tag == "!":
            tag = _resolve(event.value) if plain else _STR
        if event.anchor is None and self.stack:  # most nodes of a spec: keys and values
            top = self.stack[-1]
            if tag is _STR:
                if top.key is _NO_KEY and top.is_map:
                    mark = event.start_mark
                    loc = _location((self.name, mark.line + 1, mark.column + 1))
                    self._set_key(top, event.value, loc, event.value)
                    return
                if top.key is not _NO_KEY and top.key is not _MERGE_KEY:
                    self._value_under_key(top, event, event.value)
                    return
            elif (
                plain and tag in _IMPLICIT and top.key is not _NO_KEY and top.key is not _MERGE_KEY
            ):
                try:
                    value = _construct_scalar(tag, event.value)
                except (ValueError, KeyError, ConstructorError):
                    pass  # e.g. `0b_` matches the int pattern; the general path reports it
                else:
                    self._value_under_key(top, event, value)
                    return
        if not self.stack:
            if plain and event.value == "" and event.tag is None:
                self._fail(
                    "load.empty",
                    event.start_mark,
                    "the file is empty; a spec needs `training:` or `tuning:`",
                    "start the file with `training:` or `tuning:`",
                )
            self._not_a_mapping(event.start_mark, _kind_of_tag(tag))
        top = self.stack[-1]
        if top.is_map and top.key is _NO_KEY:
            self._key(event, tag)
            return
        path = self._begin_node(event.start_mark)
        value = self._construct(tag, event, path)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, [((), self.log[-1][1], None)], 0)
        self._attach(value)

    def _value_under_key(self, top: _Frame, event: Any, value: Any) -> None:
        """`_begin_node` + `_attach` for a scalar under an ordinary mapping key."""
        self.nodes += 1
        if self.nodes > self.max_nodes:
            self._begin_node(event.start_mark)  # reports the limit
        mark = event.start_mark
        key = top.key
        self.log.append(
            ((*top.path, key), _location((self.name, mark.line + 1, mark.column + 1)), top.key_loc)
        )
        top.value[key] = value
        top.key = _NO_KEY

    def _key(self, event: Any, tag: str) -> None:
        top = self.stack[-1]
        loc = self._loc(event.start_mark)
        if tag == _MERGE and event.implicit[0]:
            top.key, top.key_loc = _MERGE_KEY, loc
            top.merge_start = len(self.log)
            return
        key = self._construct(tag, event, (*top.path, event.value))
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(key, [((), loc, None)], 0)
        self._set_key(top, key, loc, event.value)

    def _set_key(self, top: _Frame, key: Any, loc: Location, text: str) -> None:
        if not isinstance(key, str):
            self.errors.append(
                Diagnostic(
                    "load.non_string_key",
                    format_path(top.path),
                    f"the key `{text}` is {_describe(key)}, not a string",
                    "an alias used as a key must name a string"
                    if text.startswith("*")
                    else f'quote it: "{text}"',
                    loc,
                    value=text,
                )
            )
            key = text
        first = top.keys.get(key)
        if first is not None:
            self.errors.append(
                Diagnostic(
                    "load.duplicate_key",
                    format_path((*top.path, key)),
                    f"duplicate key `{key}`",
                    f"`{key}` is already set at line {first.line}; keep one of them",
                    loc,
                    value=key,
                )
            )
        else:
            top.keys[key] = loc
        top.key, top.key_loc = key, loc

    def _construct(self, tag: str, event: Any, path: FieldPath) -> Any:
        value = event.value
        if tag in _AS_TEXT:
            return value
        if tag not in _SCALAR_TAGS:
            self._unsafe_tag(tag, event.start_mark, path, "a scalar")
            return value
        try:
            return _construct_scalar(tag, value)
        except (ValueError, KeyError, ConstructorError):
            short = tag.replace(_T, "")
            self.errors.append(
                Diagnostic(
                    "load.syntax",
                    format_path(path),
                    f"`{value}` is not a valid {short}",
                    f"write a valid {short} or drop the `!!{short}` tag",
                    self._loc(event.start_mark),
                    value=value,
                )
            )
            return value

    def _start(self, event: Any, is_map: bool) -> None:
        mark = event.start_mark
        if not self.stack and not is_map:
            self._not_a_mapping(mark, "a list")
        if self._expecting_key():
            self._complex_key(mark)
        depth = len(self.stack) + 1
        if depth > self.max_depth:
            self._too_deep(mark)
        path = self._begin_node(mark)
        tag = event.tag
        if tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ):
            self._unsafe_tag(tag, mark, path, "a mapping" if is_map else "a list")
        frame = _Frame(is_map, path, event.anchor, len(self.log) - 1)
        if event.anchor is not None:
            self.anchors[event.anchor] = None
        self.stack.append(frame)

    def _end(self) -> None:
        frame = self.stack.pop()
        value = frame.value
        for source, entries in frame.merges:
            self._merge(frame, source, entries)
        if frame.anchor is not None:
            self._record_anchor(frame, value)
        self._attach(value)

    def _record_anchor(self, frame: _Frame, value: Any) -> None:
        cut = len(frame.path)
        entries = [(p[cut:], loc, key) for p, loc, key in self.log[frame.log_start :]]
        entries[0] = ((), entries[0][1], None)  # the alias supplies its own key
        depth = 1 + max(len(p) for p, _, _ in entries)
        self.anchors[frame.anchor] = _Anchor(value, entries, depth)  # type: ignore[index]

    def _merge(self, frame: _Frame, source: Any, entries: list) -> None:
        """Fold a `<<` value (a mapping or a list of them) into `target`, as safe_load does."""
        loc = frame.key_loc or Location(self.name)
        sources: list[tuple[tuple[int, ...], dict[Any, Any]]]
        if isinstance(source, dict):
            sources = [((), source)]
        elif isinstance(source, list) and all(isinstance(s, dict) for s in source):
            sources = [((i,), s) for i, s in enumerate(source)]
        else:
            self.errors.append(
                Diagnostic(
                    "load.syntax",
                    format_path((*frame.path, "<<")),
                    "a merge key `<<` needs a mapping or a list of mappings",
                    "write `<<: *anchor` or `<<: [*a, *b]` where the anchors name mappings",
                    loc,
                )
            )
            return
        target = frame.value
        for prefix, mapping in sources:
            for key, value in mapping.items():
                if key in target:
                    continue  # explicit keys, then earlier merges, win
                target[key] = _copy(value)
                head = (*prefix, key)
                n = len(head)
                for rel, entry_loc, key_loc in entries:
                    if rel[:n] == head:
                        self.log.append(((*frame.path, key, *rel[n:]), entry_loc, key_loc))

    def _alias(self, event: Any) -> None:
        mark = event.start_mark
        self.aliases += 1
        if self.aliases > self.max_aliases:
            self._fail(
                "load.alias_limit",
                mark,
                f"the document uses more than {self.max_aliases} aliases",
                "write the values out instead of repeating `*alias` references",
            )
        if event.anchor not in self.anchors:
            self._fail(
                "load.syntax",
                mark,
                f"undefined alias `*{event.anchor}`",
                f"define it first with `&{event.anchor}` on the value to repeat",
            )
        anchor = self.anchors[event.anchor]
        if anchor is None:
            self._fail(
                "load.alias_limit",
                mark,
                f"alias `*{event.anchor}` refers to a node that contains it",
                "a recursive alias expands forever; write the value out",
            )
        if not self.stack:
            self._not_a_mapping(mark, "an alias")
        if self._expecting_key():
            if isinstance(anchor.value, dict | list):
                self._complex_key(mark)
            top = self.stack[-1]
            self._set_key(top, anchor.value, self._loc(mark), f"*{event.anchor}")
            return
        if self.nodes + len(anchor.entries) > self.max_nodes:
            self._fail(
                "load.alias_limit",
                mark,
                f"alias `*{event.anchor}` expands the document past {self.max_nodes} values",
                "this looks like a yaml bomb; write the values out instead of nesting aliases",
            )
        if len(self.stack) + anchor.depth > self.max_depth:
            self._too_deep(mark)
        path = self._begin_node(mark)
        self.nodes += len(anchor.entries) - 1
        for rel, entry_loc, key_loc in anchor.entries[1:]:
            self.log.append(((*path, *rel), entry_loc, key_loc))
        self._attach(_copy(anchor.value))

    # -- failures -------------------------------------------------------------------------

    def _fail(
        self, code: str, mark: Any, message: str, hint: str, at_start: bool = False
    ) -> NoReturn:
        loc = Location(self.name, 1, 1) if at_start else self._loc(mark)
        raise SpecError([*self.errors, Diagnostic(code, "", message, hint, loc)])

    def _not_a_mapping(self, mark: Any, what: str) -> NoReturn:
        self._fail(
            "load.not_a_mapping",
            mark,
            f"the top level is {what}, not a mapping",
            "a spec is a mapping with one key, `training:` or `tuning:`",
        )

    def _too_deep(self, mark: Any) -> NoReturn:
        self._fail(
            "load.too_deep",
            mark,
            f"the document nests deeper than {self.max_depth} levels",
            "a spec is shallow; check for runaway brackets or indentation",
        )

    def _complex_key(self, mark: Any) -> NoReturn:
        self._fail(
            "load.non_string_key",
            mark,
            "a mapping key must be a string, not a list or mapping",
            "write keys as plain words, e.g. `name: value`",
        )

    def _unsafe_tag(self, tag: str, mark: Any, path: FieldPath, node: str) -> None:
        short = tag.replace(_T, "!!")
        self.errors.append(
            Diagnostic(
                "load.unsafe_tag",
                format_path(path),
                f"unsupported tag `{short}` on {node}",
                "remove the tag; a spec holds only plain strings, numbers, booleans, "
                "lists and mappings",
                self._loc(mark),
                value=short,
            )
        )

    def _syntax_error(self, error: yaml.YAMLError) -> Diagnostic:
        if isinstance(error, yaml.reader.ReaderError):
            line, column = _line_column(self.text, error.position)
            char = error.character
            code = f"U+{char:04X}" if isinstance(char, int) else repr(char)
            return Diagnostic(
                "load.syntax",
                "",
                f"character {code} is not allowed in yaml",
                "remove it, or write it as an escape inside a double-quoted string",
                Location(self.name, line, column),
            )
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        tab = _tab_near(self.text, mark) if mark is not None else None
        if tab is not None or "tab" in problem:
            if tab is not None:
                where = Location(self.name, *tab)
            else:  # an error without a mark has no place to name
                where = self._loc(mark) if mark is not None else Location(self.name)
            return Diagnostic(
                "load.tabs",
                "",
                "a tab is used for indentation",
                "indent with spaces; yaml does not allow tabs there",
                where,
            )
        context = getattr(error, "context", None)
        context_mark = getattr(error, "context_mark", None)
        hint = "check the indentation, colons and quotes around here"
        if context and context_mark is not None:
            hint = f"{context} started at line {context_mark.line + 1}; {hint}"
        loc = self._loc(mark) if mark is not None else Location(self.name)
        return Diagnostic("load.syntax", "", f"invalid yaml: {problem}", hint, loc)


def _construct_scalar(tag: str, value: str) -> Any:
    """The value of an int, float, bool or null scalar; ValueError/KeyError if malformed."""
    if tag == _INT:
        if value.isdigit() and (value[0] != "0" or len(value) == 1):
            return int(value)  # the common case; `010` is octal in YAML 1.1
        return _CONSTRUCTOR.construct_yaml_int(ScalarNode(tag, value))
    if tag == _FLOAT:
        return _CONSTRUCTOR.construct_yaml_float(ScalarNode(tag, value))
    if tag == _BOOL:
        return SafeConstructor.bool_values[value.lower()]
    return None  # _NULL


def _resolve(value: str) -> str:
    """The implicit tag of a plain scalar (int, float, bool, null, timestamp or str)."""
    return _resolve_short(value) if len(value) <= 64 else _resolve_uncached(value)


# Keys and common values repeat across every spec; long values (bounded memory) do not.
_resolve_short = functools.lru_cache(maxsize=4096)(lambda value: _resolve_uncached(value))


def _resolve_uncached(value: str) -> str:
    for tag, regexp in _RESOLVERS.get(value[:1], _WILDCARD):
        if regexp.match(value):
            return tag
    return _STR


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _kind_of_tag(tag: str) -> str:
    kinds = {_NULL: "null", _BOOL: "a boolean", _INT: "a number", _FLOAT: "a number"}
    return kinds.get(tag, "a string")


def _copy(value: Any) -> Any:
    """A fresh copy so that no two paths share one mutable object."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _tab_near(text: str, mark: Any) -> tuple[int, int] | None:
    """The (line, column) of a tab in the indentation of the error's line, if any."""
    lines = text.split("\n", mark.line + 1)
    if mark.line >= len(lines):
        return None
    line = lines[mark.line]
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent:
        return mark.line + 1, indent.index("\t") + 1
    if 0 <= mark.column < len(line) and line[mark.column] == "\t":
        return mark.line + 1, mark.column + 1
    return None
