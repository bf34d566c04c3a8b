"""The validate pass: every mistake at once, located, with hints; spellings normalized."""

import pytest
from trainspec.compiler import SpecError, load_source
from trainspec.compiler.check._validate import validate_layer

FIVE_MISTAKES = """\
training:
  name: bad_name
  model:
    pretrained: huggingface-spc-bert-base-cased
  compute:
    instanceTyp: ml.p3.2xlarge
    instance_count: "two"
  data:
    train: {uri: "s3://Bad_Bucket/x/", input_mode: Fastfil}
"""


def _validate(text, path="spec.yaml", kind="spec"):
    loaded = load_source(path, text)
    return validate_layer(
        loaded.path, loaded.tree, loaded.locations, loaded.key_locations, kind=kind
    )


def test_five_independent_mistakes_give_five_located_diagnostics():
    with pytest.raises(SpecError) as caught:
        _validate(FIVE_MISTAKES)
    found = {
        (d.code, d.field_path, d.location.line, d.location.column) for d in caught.value.diagnostics
    }
    assert found == {
        ("spec.pattern.sagemaker_name", "training.name", 2, 9),
        ("spec.unknown_field", "training.compute.instanceTyp", 6, 5),
        ("spec.type", "training.compute.instance_count", 7, 21),
        ("spec.s3_uri", "training.data.train.uri", 9, 18),
        ("spec.enum", "training.data.train.input_mode", 9, 52),
    }
    unknown = next(d for d in caught.value.diagnostics if d.code == "spec.unknown_field")
    assert "instance_type" in unknown.hint


def test_camel_case_short_enums_and_channel_shorthand_are_normalized():
    layer = _validate(
        "training:\n  name: a\n  perDeviceBatchSize: 8\n"
        "  data: {train: s3://bucket-a/x/, test: {uri: s3://bucket-a/t/, inputMode: FastFile}}\n"
    )
    training = layer.tree["training"]
    assert training["per_device_batch_size"] == 8
    assert training["data"]["train"] == {"uri": "s3://bucket-a/x/"}
    assert training["data"]["test"]["input_mode"] == "INPUT_MODE_FAST_FILE"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("training: {name: a}\ntuning: {name: b}\n", "spec.both_jobs"),
        ("training:\n  model: {pretrained: x, image: y}\n", "spec.oneof"),
        ("training:\n  compute: [ml.m5.large]\n", "spec.type"),
        ("training:\n  sifting: {beta_value: 0}\n", "spec.out_of_range"),
        ("training:\n  name: " + "a" * 64 + "\n", "spec.length"),
        ("trainin:\n  name: a\n", "spec.unknown_field"),
    ],
)
def test_bad_specs_give_one_clear_diagnostic(text, code):
    with pytest.raises(SpecError) as caught:
        _validate(text)
    codes = [d.code for d in caught.value.diagnostics]
    assert code in codes
    assert all(d.location is not None for d in caught.value.diagnostics)


def test_defaults_files_take_a_catalog_block_and_no_job():
    layer = _validate(
        "training: {region: us-east-1}\ncatalog: {instances: {}}\n",
        path="trainspec.defaults.yaml",
        kind="defaults",
    )
    assert layer.tree["training"]["region"] == "us-east-1"


def test_threads_validating_at_once_each_get_their_own_diagnostics():
    """The gRPC server validates on many threads; cerberus validators hold per-call state."""
    from concurrent.futures import ThreadPoolExecutor

    specs = {
        FIVE_MISTAKES: sorted(_codes(FIVE_MISTAKES)),
        "training:\n  compute: [ml.m5.large]\n": ["spec.type"],
        "training:\n  sifting: {beta_value: 0}\n": ["spec.out_of_range"],
    }

    def validate_many(text: str) -> set[tuple[str, ...]]:
        return {tuple(sorted(_codes(text))) for _ in range(40)}

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(validate_many, [t for t in specs for _ in range(8)]))
    texts = [t for t in specs for _ in range(8)]
    for text, seen in zip(texts, results, strict=True):
        assert seen == {tuple(specs[text])}


def _codes(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        _validate(text)
    return [d.code for d in caught.value.diagnostics]
