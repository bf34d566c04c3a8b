"""Tests for the load pass: trees, locations, limits and one diagnostic per bad input."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import time

import pytest
import yaml
from trainspec.compiler._diagnostics import Location, SpecError
from trainspec.compiler._tree import tree_paths
from trainspec.compiler.load import _load
from trainspec.compiler.load._load import (
    FORMATS,
    MAX_BYTES,
    MAX_DEPTH,
    LoadedSource,
    load_file,
    load_source,
)

DATA = pathlib.Path(__file__).parent / "data" / "load"
BAD_INPUTS = yaml.safe_load((DATA / "bad_inputs.yaml").read_text())

SPEC_YAML = """\
# a fine-tuning job
training:
  name: sentiment-bert
  model:
    pretrained: huggingface-spc-bert-base-cased
  compute: {instanceType: ml.p3.8xlarge, instance_count: 2}
  hyperparameters:
    epochs: 3
    learning_rate: 5e-5
    lr: 1.0e-3
    fp16: yes
    note: null
    started: 2024-01-02
    octal: 010
    quoted: "42"
  metrics:
    - name: "validation:accuracy"
      regex: "acc: ([0-9.]+)"
    - {name: loss, regex: "loss: ([0-9.]+)"}
"""


def _one(excinfo: pytest.ExceptionInfo[SpecError]):
    diagnostics = excinfo.value.diagnostics
    assert len(diagnostics) == 1, [d.format_text() for d in diagnostics]
    return diagnostics[0]


def _at(loaded: LoadedSource, *path) -> tuple[int, int]:
    loc = loaded.locations[tuple(path)]
    assert loc.path == loaded.path
    return loc.line, loc.column


def _key_at(loaded: LoadedSource, *path) -> tuple[int, int]:
    loc = loaded.key_locations[tuple(path)]
    return loc.line, loc.column


# -- YAML ---------------------------------------------------------------------------------


def test_yaml_tree_matches_safe_load_except_timestamps():
    loaded = load_source("spec.yaml", SPEC_YAML)
    expected = yaml.safe_load(SPEC_YAML)
    expected["training"]["hyperparameters"]["started"] = "2024-01-02"
    assert loaded.tree == expected
    assert loaded.format == "yaml"
    hyper = loaded.tree["training"]["hyperparameters"]
    assert hyper["learning_rate"] == "5e-5"  # YAML 1.1: no dot, so a string, as safe_load
    assert hyper["lr"] == 1.0e-3
    assert hyper["fp16"] is True
    assert hyper["note"] is None
    assert hyper["octal"] == 8
    assert hyper["quoted"] == "42"


def test_yaml_locations_for_values_and_keys():
    loaded = load_source("spec.yaml", SPEC_YAML)
    assert _at(loaded) == (2, 1)
    assert _key_at(loaded, "training") == (2, 1)
    assert _at(loaded, "training") == (3, 3)  # a block mapping starts at its first key
    assert _key_at(loaded, "training", "name") == (3, 3)
    assert _at(loaded, "training", "name") == (3, 9)
    assert _at(loaded, "training", "model", "pretrained") == (5, 17)
    # flow mappings; both spellings of a field name are just data here
    assert _at(loaded, "training", "compute") == (6, 12)
    assert _key_at(loaded, "training", "compute", "instanceType") == (6, 13)
    assert _at(loaded, "training", "compute", "instanceType") == (6, 27)
    assert _key_at(loaded, "training", "compute", "instance_count") == (6, 42)
    # lists: items have value locations and no key locations
    assert _at(loaded, "training", "metrics", 0) == (17, 7)
    assert ("training", "metrics", 0) not in loaded.key_locations
    assert _key_at(loaded, "training", "metrics", 0, "regex") == (18, 7)
    assert _at(loaded, "training", "metrics", 0, "regex") == (18, 14)
    assert _at(loaded, "training", "metrics", 1) == (19, 7)
    assert _at(loaded, "training", "metrics", 1, "regex") == (19, 27)


def test_yaml_every_node_has_a_location_and_every_entry_a_key_location():
    loaded = load_source("spec.yaml", SPEC_YAML)
    paths = set(tree_paths(loaded.tree))
    assert set(loaded.locations) == paths
    assert set(loaded.key_locations) == {p for p in paths if p and isinstance(p[-1], str)}


def test_yaml_columns_count_characters_not_bytes():
    loaded = load_source("u.yaml", 'training:\n  name: "é€" # ü\n  note: ok\n')
    assert _at(loaded, "training", "note") == (3, 9)
    loaded = load_source("u.yaml", "training: {a: é€, b: 1}\n".encode())
    assert _at(loaded, "training", "b") == (1, 22)  # 25 if bytes were counted


def test_yaml_bom_is_ignored():
    loaded = load_source("bom.yaml", "\ufefftraining:\n  name: a\n".encode())
    assert loaded.tree == {"training": {"name": "a"}}
    assert _at(loaded, "training", "name") == (2, 9)


def test_yaml_anchors_expand_to_fresh_copies_with_locations():
    text = "base: &b {lr: 0.1, opt: [adam]}\none: *b\ntwo:\n  <<: *b\n  lr: 0.2\n"
    loaded = load_source("a.yaml", text)
    assert loaded.tree == yaml.safe_load(text)
    assert loaded.tree["one"] is not loaded.tree["base"]
    assert loaded.tree["one"]["opt"] is not loaded.tree["base"]["opt"]
    assert _at(loaded, "one") == (2, 6)  # where the alias is written
    assert _at(loaded, "one", "lr") == (1, 15)  # inside: where the anchored value is
    assert _key_at(loaded, "one", "lr") == (1, 11)
    assert _at(loaded, "two", "lr") == (5, 7)  # an explicit key beats the merged one
    assert _at(loaded, "two", "opt", 0) == (1, 26)
    assert ("two", "<<") not in loaded.locations


def test_yaml_merge_list_order_matches_safe_load():
    text = "a: &a {x: 1, y: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n  y: 3\n"
    assert load_source("m.yaml", text).tree == yaml.safe_load(text)


def test_yaml_explicit_standard_tags():
    text = "a: !!str 12\nb: !!int '7'\nc: !!float 1\nd: ! 5\ne: !!map {k: v}\nf: !!seq [1]\n"
    loaded = load_source("t.yaml", text)
    assert loaded.tree == {"a": "12", "b": 7, "c": 1.0, "d": 5, "e": {"k": "v"}, "f": [1]}
    assert loaded.tree == yaml.safe_load(text)  # `!` on a plain scalar resolves, as there


def test_yaml_collects_independent_errors():
    text = (
        "training:\n  name: a\n  name: b\n  tags: {x: 1, x: 2}\n  env: !!python/name:os.system x\n"
    )
    with pytest.raises(SpecError) as excinfo:
        load_source("many.yaml", text)
    found = [(d.code, d.location.line) for d in excinfo.value.diagnostics]
    assert found == [
        ("load.duplicate_key", 3),
        ("load.duplicate_key", 4),
        ("load.unsafe_tag", 5),
    ]


def test_yaml_bomb_is_rejected_fast():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    with pytest.raises(SpecError) as excinfo:
        load_source("bomb.yaml", "\n".join(lines) + "\n")
    elapsed = time.perf_counter() - start
    diagnostic = _one(excinfo)
    assert diagnostic.code == "load.alias_limit"
    assert diagnostic.location.line > 1
    assert elapsed < 5  # a generous bound; the point is "not a billion nodes"


def test_yaml_many_small_aliases_hit_the_alias_limit():
    text = "a: &a x\nb: [" + ", ".join(["*a"] * 1500) + "]\n"
    with pytest.raises(SpecError) as excinfo:
        load_source("aliases.yaml", text)
    assert _one(excinfo).code == "load.alias_limit"


def test_yaml_deep_block_nesting_never_recurses():
    # `- - - - ...` nests one level per dash on a single line.
    text = "training:\n  x:\n    " + "- " * 200_000 + "1\n"
    with pytest.raises(SpecError) as excinfo:
        load_source("dashes.yaml", text)
    diagnostic = _one(excinfo)
    assert diagnostic.code == "load.too_deep"
    # root and `training` are levels 1 and 2; the first dash, at column 5, opens level 3
    column = 5 + 2 * (MAX_DEPTH + 1 - 3)
    assert (diagnostic.location.line, diagnostic.location.column) == (3, column)


def test_yaml_depth_at_the_limit_is_fine():
    depth = MAX_DEPTH - 1  # the root mapping is one level
    text = "a: " + "[" * depth + "]" * depth + "\n"
    assert load_source("ok.yaml", text).tree["a"] == _nested(depth)


def _nested(depth: int):
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- JSON ---------------------------------------------------------------------------------


SPEC_JSON = """\
{
  "training": {
    "name": "bert",
    "compute": {"instanceType": "ml.p3.8xlarge", "instance_count": 2},
    "hyperparameters": {"epochs": 3, "lr": 5e-5, "neg": -1.5, "on": true, "x": null},
    "metrics": [
      {"name": "acc", "regex": "acc: ([0-9.]+)"},
      {"name": "\\u00e9\\n", "regex": "r"}
    ]
  }
}
"""


def test_json_tree_matches_json_loads():
    loaded = load_source("spec.json", SPEC_JSON)
    assert loaded.tree == json.loads(SPEC_JSON)
    assert loaded.format == "json"
    assert isinstance(loaded.tree["training"]["compute"]["instance_count"], int)
    assert isinstance(loaded.tree["training"]["hyperparameters"]["lr"], float)


def test_json_locations_for_values_and_keys():
    loaded = load_source("spec.json", SPEC_JSON)
    assert _at(loaded) == (1, 1)
    assert _key_at(loaded, "training") == (2, 3)
    assert _at(loaded, "training") == (2, 15)
    assert _at(loaded, "training", "name") == (3, 13)
    assert _key_at(loaded, "training", "compute", "instance_count") == (4, 50)
    assert _at(loaded, "training", "compute", "instance_count") == (4, 68)
    assert _at(loaded, "training", "hyperparameters", "neg") == (5, 57)
    assert _at(loaded, "training", "metrics") == (6, 16)
    assert _at(loaded, "training", "metrics", 1) == (8, 7)
    assert _key_at(loaded, "training", "metrics", 1, "regex") == (8, 28)
    assert _at(loaded, "training", "metrics", 1, "regex") == (8, 37)
    paths = set(tree_paths(loaded.tree))
    assert set(loaded.locations) == paths
    assert set(loaded.key_locations) == {p for p in paths if p and isinstance(p[-1], str)}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, -0, 0.5, 1e3, -2E-2, "x\\"y", "\\ud83d\\ude00", {}, [], true, false, null]}',
        '{"": 1, "a b": {"c": {"d": [[[]]]}}}',
        ' \t\r\n{ "a" : 1 , "b" : [ 1 , 2 ] } \n',
        '{"big": 123456789012345678901234567890, "small": 1e-400}',
    ],
)
def test_json_agrees_with_json_loads(text):
    assert load_source("x.json", text).tree == json.loads(text)


# -- textproto ----------------------------------------------------------------------------


SPEC_TEXTPROTO = """\
# a textproto spec
training {
  name: "bert"
  compute { instance_type: "ml.p3.8xlarge" instance_count: 2 }
  hyperparameters { key: "epochs" value { number_value: 3 } }
  hyperparameters {
    key: "layers"
    value { list_value { values { string_value: "a" } values { number_value: 2 } } }
  }
  metrics { name: "acc" regex: "acc: ([0-9.]+)" }
  metrics [{ name: "loss" regex: "l" }]
}
"""


def test_textproto_tree_is_the_proto3_json_of_the_message():
    loaded = load_source("spec.textproto", SPEC_TEXTPROTO)
    assert loaded.format == "textproto"
    assert loaded.tree == {
        "training": {
            "name": "bert",
            "compute": {"instance_type": "ml.p3.8xlarge", "instance_count": 2},
            "hyperparameters": {"epochs": 3.0, "layers": ["a", 2.0]},
            "metrics": [
                {"name": "acc", "regex": "acc: ([0-9.]+)"},
                {"name": "loss", "regex": "l"},
            ],
        }
    }


def test_textproto_locations():
    loaded = load_source("spec.txtpb", SPEC_TEXTPROTO)
    assert _key_at(loaded, "training") == (2, 1)
    assert _key_at(loaded, "training", "name") == (3, 3)
    assert _at(loaded, "training", "name") == (3, 9)
    assert _at(loaded, "training", "compute", "instance_count") == (4, 60)
    assert _key_at(loaded, "training", "hyperparameters", "epochs") == (5, 21)
    assert _at(loaded, "training", "hyperparameters", "epochs") == (5, 41)
    assert _at(loaded, "training", "hyperparameters", "layers", 1) == (8, 62)
    assert _at(loaded, "training", "metrics", 0, "regex") == (10, 32)
    assert _at(loaded, "training", "metrics", 1, "name") == (11, 20)
    assert set(loaded.locations) == set(tree_paths(loaded.tree))


def test_textproto_unlocatable_nodes_get_the_file():
    # A string key with escapes is found by the parser but not placed by the walk.
    loaded = load_source("e.textproto", 'training { tags { key: "a\\x62" value: "v" } }\n')
    assert loaded.tree == {"training": {"tags": {"ab": "v"}}}
    assert loaded.locations[("training", "tags", "ab")] == Location("e.textproto")


# -- bytes and files ----------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c["name"] for c in BAD_INPUTS])
def test_bad_input_gives_one_located_diagnostic(case):
    with pytest.raises(SpecError) as excinfo:
        load_source(case["file"], case["content"])
    diagnostic = _one(excinfo)
    assert diagnostic.code == case["code"]
    assert diagnostic.location is not None
    assert diagnostic.location.path == case["file"]
    if "at" in case:
        assert [diagnostic.location.line, diagnostic.location.column] == case["at"]
    if "field_path" in case:
        assert diagnostic.field_path == case["field_path"]
    assert diagnostic.message and not diagnostic.message[0].isupper()
    assert diagnostic.hint


def test_bad_inputs_cover_every_format():
    extensions = {os.path.splitext(c["file"])[1] for c in BAD_INPUTS}
    assert {".yaml", ".json", ".textproto", ".txtpb"} <= extensions


@pytest.mark.parametrize("name", ["s.yaml", "s.json", "s.textproto"])
def test_binary_content_is_located_at_the_first_nul(name):
    with pytest.raises(SpecError) as excinfo:
        load_source(name, b"training:\n  name: ab\x00cd\n")
    diagnostic = _one(excinfo)
    assert diagnostic.code == "load.binary"
    assert (diagnostic.location.line, diagnostic.location.column) == (2, 11)


def test_utf16_is_reported_as_binary():
    with pytest.raises(SpecError) as excinfo:
        load_source("s.yaml", "training: {}\n".encode("utf-16"))
    assert _one(excinfo).code == "load.binary"


@pytest.mark.parametrize("name", ["s.yaml", "s.json", "s.txtpb"])
def test_invalid_utf8_is_located_at_the_first_bad_byte(name):
    with pytest.raises(SpecError) as excinfo:
        load_source(name, "training:\n  name: é".encode() + b"\xff\xfe\n")
    diagnostic = _one(excinfo)
    assert diagnostic.code == "load.encoding"
    assert (diagnostic.location.line, diagnostic.location.column) == (2, 10)
    assert "0xff" in diagnostic.message


def test_lone_surrogate_in_str_content_is_an_encoding_error():
    with pytest.raises(SpecError) as excinfo:
        load_source("s.yaml", "a: \udcff\n")
    assert _one(excinfo).code == "load.encoding"


def test_50_mb_file_is_rejected_without_reading_it(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # sparse: no 50 MB written to disk
    start = time.perf_counter()
    with pytest.raises(SpecError) as excinfo:
        load_file(big)
    elapsed = time.perf_counter() - start
    diagnostic = _one(excinfo)
    assert diagnostic.code == "load.too_large"
    assert diagnostic.location == Location(str(big))
    assert elapsed < 1


def test_in_memory_content_over_the_limit_is_too_large():
    with pytest.raises(SpecError) as excinfo:
        load_source("big.json", b"{" + b" " * MAX_BYTES + b"}")
    assert _one(excinfo).code == "load.too_large"


def test_a_file_that_grew_since_stat_is_read_to_the_end_or_refused(tmp_path, monkeypatch):
    # The read buffer is sized from stat; a file that grew since must still be read whole,
    # and one that grew past the limit is refused, not cut.
    grown = tmp_path / "grown.yaml"
    grown.write_text("training: {}\n" + "#" * 300_000 + "\n")
    stale = os.stat_result((stat.S_IFREG | 0o644, 0, 0, 1, 0, 0, 10, 0, 0, 0))
    monkeypatch.setattr(_load.os, "stat", lambda name: stale)
    assert load_file(grown).tree == {"training": {}}
    grown.write_text("#" * (MAX_BYTES + 10))
    with pytest.raises(SpecError) as excinfo:
        load_file(grown)
    assert _one(excinfo).code == "load.too_large"


def test_content_at_the_limit_loads():
    text = "training: {}\n"
    padded = text + "#" * (MAX_BYTES - len(text) - 1) + "\n"
    assert load_source("ok.yaml", padded).tree == {"training": {}}


def test_load_file_reads_each_format(tmp_path):
    for name, content in [
        ("a.yaml", SPEC_YAML),
        ("a.yml", SPEC_YAML),
        ("a.json", SPEC_JSON),
        ("a.textproto", SPEC_TEXTPROTO),
        ("a.TXTPB", SPEC_TEXTPROTO),
    ]:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        loaded = load_file(path)
        assert loaded.path == str(path)
        assert loaded.format == FORMATS[os.path.splitext(name)[1].lower()]
        assert loaded.tree == load_source(name, content).tree
        assert all(loc.path == str(path) for loc in loaded.locations.values())


def test_unreadable_paths(tmp_path):
    for path, words in [
        (tmp_path / "missing.yaml", "no such file"),
        (tmp_path, "folder"),
    ]:
        with pytest.raises(SpecError) as excinfo:
            load_file(path)
        diagnostic = _one(excinfo)
        assert diagnostic.code == "load.unreadable"
        assert words in diagnostic.message
        assert diagnostic.location == Location(str(path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError) as excinfo:
        load_file(fifo)
    assert _one(excinfo).code == "load.unreadable"


def test_a_file_that_cannot_be_read_is_unreadable(tmp_path):
    path = tmp_path / "secret.yaml"
    if os.geteuid() != 0:
        path.write_text("training: {}\n")
        path.chmod(0)
    elif os.path.exists("/proc/self/clear_refs"):
        # Root reads any mode-0 file; a write-only /proc file still refuses a read.
        path.symlink_to("/proc/self/clear_refs")
    else:
        pytest.skip("as root, an unreadable file needs Linux's write-only /proc/self/clear_refs")
    with pytest.raises(SpecError) as excinfo:
        load_file(path)
    assert _one(excinfo).code == "load.unreadable"


def test_formats_table():
    assert dict(FORMATS) == {
        ".yaml": "yaml",
        ".yml": "yaml",
        ".json": "json",
        ".textproto": "textproto",
        ".txtpb": "textproto",
    }


def test_loaded_source_is_frozen():
    loaded = load_source("a.yaml", "training: {}\n")
    with pytest.raises(AttributeError):
        loaded.tree = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        loaded.locations[("x",)] = Location("a.yaml")  # type: ignore[index]
