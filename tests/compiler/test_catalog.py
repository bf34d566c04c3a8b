"""The packaged catalogs, their schema checks, organisation additions and image URIs."""

from __future__ import annotations

import dataclasses
import re
import textwrap

import botocore.session
import pytest
from trainspec.compiler._catalog import (
    Catalog,
    _load_catalog_files,
    _load_instances,
    _load_models,
    extend_catalog,
    gpus_for_batch,
    image_uri,
    load_catalog,
)
from trainspec.compiler._diagnostics import InternalError, Location, SpecError


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def training_instance_enum() -> set[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return {v for v in model.shape_for("TrainingInstanceType").enum if v.startswith("ml.")}


def test_loads_once_with_versions(catalog):
    assert load_catalog() is catalog
    assert set(catalog.versions) == {"instances", "models"}
    for version in catalog.versions.values():
        assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}-\d+", version)


def test_catalog_is_read_only(catalog):
    with pytest.raises(TypeError):
        catalog.instances["ml.x.large"] = None  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.instances["ml.p3.2xlarge"].gpus = 2  # type: ignore[misc]


def test_instances_match_botocore_enum_exactly(catalog):
    assert set(catalog.instances) == training_instance_enum()


GPU_COUNTS = {
    "ml.p2.xlarge": 1, "ml.p2.8xlarge": 8, "ml.p2.16xlarge": 16,
    "ml.p3.2xlarge": 1, "ml.p3.8xlarge": 4, "ml.p3.16xlarge": 8, "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8, "ml.p4de.24xlarge": 8, "ml.p5.48xlarge": 8,
}  # fmt: skip


@pytest.mark.parametrize(("name", "gpus"), sorted(GPU_COUNTS.items()))
def test_p_family_gpu_counts(catalog, name, gpus):
    assert catalog.instances[name].gpus == gpus


@pytest.mark.parametrize("family", ["g4dn", "g5", "g6", "g6e"])
def test_g_family_gpu_counts(catalog, family):
    sizes = [n for n in catalog.instances if n.startswith(f"ml.{family}.")]
    assert sizes
    for name in sizes:
        size = name.rsplit(".", 1)[1]
        expected = {"12xlarge": 4, "24xlarge": 4, "48xlarge": 8}.get(size, 1)
        assert catalog.instances[name].gpus == expected, name


CPU_FAMILIES = ("m4", "m5", "m6i", "m7i", "m8i", "c4", "c5", "c5n", "c6i", "c7i", "c8i",
                "r5", "r5d", "r6i", "r7i", "r8i", "t3", "m7i-flex", "c7i-flex", "m8i-flex",
                "c8i-flex", "r8i-flex")  # fmt: skip


def test_cpu_families_have_no_gpus(catalog):
    for name, instance in catalog.instances.items():
        if name.split(".")[1] in CPU_FAMILIES:
            assert instance.gpus == 0 and not instance.accelerator, name
            assert gpus_for_batch(instance) == 1


def test_every_entry_is_plausible(catalog):
    for name, instance in catalog.instances.items():
        assert instance.name == name
        assert instance.vcpus >= 1 and instance.memory_gib > 0
        assert instance.price_per_hour > 0
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", instance.price_date)
        # an estimate must say so, and a read price must not claim to be an estimate
        assert instance.price_estimated == (instance.price_source == "estimate"), name
        if instance.gpus:
            assert instance.gpu_model and instance.gpu_memory_gib > 0


def test_gpus_for_batch(catalog):
    assert gpus_for_batch(catalog.instances["ml.p3.8xlarge"]) == 4
    assert gpus_for_batch(catalog.instances["ml.m5.large"]) == 1
    # Trainium counts in NeuronCores, the unit the launcher starts a worker for: 2 per
    # trn1 chip, 4 logical per trn2 chip (the training toolkit's 64 on trn2.48xlarge)
    for name, chips, cores in [
        ("ml.trn1.2xlarge", 1, 2),
        ("ml.trn1.32xlarge", 16, 32),
        ("ml.trn1n.32xlarge", 16, 32),
        ("ml.trn2.48xlarge", 16, 64),
    ]:
        trn = catalog.instances[name]
        assert trn.gpus == 0 and trn.accelerator.startswith("trainium"), name
        assert trn.accelerator_count == chips and trn.accelerator_cores == cores, name
        assert gpus_for_batch(trn) == cores and trn.device_kind == "neuron_core", name
        assert trn.specs_source, name


def test_every_accelerator_family_is_counted(catalog):
    # a trn* or inf* entry without cores would silently count as one CPU device
    for name, instance in catalog.instances.items():
        if name.split(".")[1].startswith(("trn", "inf")):
            assert instance.accelerator and instance.accelerator_cores > 0, name


def test_accelerator_entries_need_cores_and_a_source(tmp_path):
    path = tmp_path / "instances.yaml"
    path.write_text(
        'version: "2026.12.06-1"\ninstances:\n'
        '  ml.trn1.2xlarge: {gpus: 0, gpu_model: "", gpu_memory_gib: 0, vcpus: 8,'
        " memory_gib: 32, local_nvme_gb: 0, accelerator: trainium, accelerator_count: 1,"
        ' price_per_hour: 1.5, price_date: "2026-11-24", price_source: estimate,'
        " price_estimated: true}\n"
    )
    with pytest.raises(InternalError) as raised:
        _load_instances(path)
    fields = {d.field_path for d in raised.value.diagnostics}
    assert fields == {
        "instances.ml.trn1.2xlarge.accelerator_cores",
        "instances.ml.trn1.2xlarge.specs_source",
    }


def test_local_nvme(catalog):
    assert catalog.instances["ml.p4d.24xlarge"].local_nvme_gb > 0
    assert catalog.instances["ml.g5.xlarge"].local_nvme_gb > 0
    assert catalog.instances["ml.p3.8xlarge"].local_nvme_gb == 0
    assert catalog.instances["ml.m5.xlarge"].local_nvme_gb == 0


def test_models(catalog):
    by_task = {}
    for model in catalog.models.values():
        by_task.setdefault(model.task, []).append(model)
        assert model.batch_size_hyperparameter in model.default_hyperparameters
        assert model.default_instance_type in catalog.instances
        assert model.default_dataset_uri("us-east-1").startswith("s3://jumpstart-cache-prod-")
        assert model.default_dataset_uri("us-east-1").endswith("/")
        for metric in model.metric_definitions:
            assert re.compile(metric.regex).groups == 1
    assert len(by_task["text-classification"]) >= 2
    assert len(by_task["image-classification"]) >= 2
    bert = catalog.models["huggingface-tc-bert-base-uncased"]
    assert bert.data_format == "csv-label-text"
    assert bert.per_device_batch_size == 64
    assert bert.default_hyperparameters["learning_rate"] == pytest.approx(5e-5)
    resnet = catalog.models["pytorch-ic-resnet50"]
    assert resnet.data_format == "image-folders"
    assert resnet.per_device_batch_size == 32
    assert resnet.default_hyperparameters["learning_rate"] == pytest.approx(0.001)
    assert "epochs" in resnet.default_hyperparameters


def test_image_uri_per_region(catalog):
    model = catalog.models["pytorch-ic-resnet50"]
    assert image_uri(model, "us-west-2") == (
        "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:2.0.1-gpu-py310"
    )
    assert image_uri(model, "af-south-1").startswith("626614931356.dkr.ecr.af-south-1.")
    assert model.image_uri("eu-west-1", gpu=False).endswith(":2.0.1-cpu-py310")
    for region in ("us-east-1", "eu-central-1", "ap-northeast-1"):
        for entry in catalog.models.values():
            assert f".dkr.ecr.{region}.amazonaws.com/" in image_uri(entry, region)


def test_image_uri_unsupported_region_names_the_supported_ones(catalog):
    model = catalog.models["pytorch-ic-resnet50"]
    with pytest.raises(SpecError) as caught:
        image_uri(model, "xx-nowhere-9")
    (problem,) = caught.value.diagnostics
    assert problem.code == "catalog.region_unsupported"
    assert "xx-nowhere-9" in problem.message
    assert "us-east-1" in problem.hint and "eu-west-1" in problem.hint


# --- broken files --------------------------------------------------------------------------

GOOD_INSTANCE = (
    "{gpus: 1, gpu_model: T4, gpu_memory_gib: 16, vcpus: 4, memory_gib: 16, local_nvme_gb: 125,"
    ' accelerator: "", price_per_hour: 0.7, price_date: "2026-11-24", price_source: estimate,'
    " price_estimated: true}"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_tmp_file_loads(tmp_path):
    path = write(
        tmp_path, "i.yaml", f'version: "2026.01.01-1"\ninstances:\n  ml.x.large: {GOOD_INSTANCE}\n'
    )
    version, instances = _load_instances(path)
    assert version == "2026.01.01-1" and instances["ml.x.large"].gpus == 1


def test_broken_instance_names_file_entry_and_field(tmp_path):
    bad = GOOD_INSTANCE.replace("gpus: 1", "gpus: four")
    path = write(tmp_path, "i.yaml", f'version: "2026.01.01-1"\ninstances:\n  ml.x.large: {bad}\n')
    with pytest.raises(InternalError) as caught:
        _load_instances(path)
    text = str(caught.value)
    assert str(path) in text and "ml.x.large" in text and "gpus" in text
    (problem,) = caught.value.diagnostics
    assert problem.field_path == "instances.ml.x.large.gpus"
    assert problem.code == "catalog.invalid_entry"
    assert problem.location == Location(str(path))


def test_broken_instance_semantics(tmp_path):
    bad = GOOD_INSTANCE.replace("gpu_model: T4", 'gpu_model: ""')
    missing = GOOD_INSTANCE.replace(" vcpus: 4,", "")
    path = write(
        tmp_path,
        "i.yaml",
        f'version: "2026.01.01-1"\ninstances:\n  ml.x.large: {bad}\n  ml.y.large: {missing}\n',
    )
    with pytest.raises(InternalError) as caught:
        _load_instances(path)
    paths = {d.field_path for d in caught.value.diagnostics}
    assert paths == {"instances.ml.y.large.vcpus"}  # schema first; semantics once it passes
    path = write(tmp_path, "j.yaml", f'version: "2026.01.01-1"\ninstances:\n  ml.x.large: {bad}\n')
    with pytest.raises(InternalError, match="gpu_model"):
        _load_instances(path)


def test_bool_is_not_a_count(tmp_path):
    bad = GOOD_INSTANCE.replace("gpus: 1", "gpus: true")
    path = write(tmp_path, "i.yaml", f'version: "2026.01.01-1"\ninstances:\n  ml.x.large: {bad}\n')
    with pytest.raises(InternalError, match="gpus"):
        _load_instances(path)


MODEL = """\
version: "2026.01.01-1"
registries: {dlc: {us-east-1: "763104351884"}}
models:
  my-tc:
    task: text-classification
    data_format: csv-label-text
    framework: huggingface
    framework_version: "4.26"
    image_uri_template: "{account}.dkr.ecr.{region}.amazonaws.com/x:1"
    registry: dlc
    batch_size_hyperparameter: batch_size
    default_hyperparameters: {batch_size: 64, epochs: 3}
    metric_definitions: [{name: acc, regex: "acc: ([0-9.]+)"}]
"""


def test_broken_model_names_entry_and_field(tmp_path):
    _, models, _ = _load_models(write(tmp_path, "ok.yaml", MODEL))
    assert (
        models["my-tc"].image_uri("us-east-1") == "763104351884.dkr.ecr.us-east-1.amazonaws.com/x:1"
    )
    cases = {
        "data_format: csv-label-text": ("data_format: image-folders", "data_format"),
        "registry: dlc": ("registry: nope", "registry"),
        "batch_size: 64": ("batch_size: big", "default_hyperparameters"),
        '"acc: ([0-9.]+)"': '"acc: [0-9.]+"',
        "task: text-classification": ("task: translation", "task"),
    }
    for old, new in cases.items():
        replacement, field = new if isinstance(new, tuple) else (new, "metric_definitions[0].regex")
        path = write(tmp_path, "bad.yaml", MODEL.replace(old, replacement))
        with pytest.raises(InternalError) as caught:
            _load_models(path)
        assert any(d.field_path == f"models.my-tc.{field}" for d in caught.value.diagnostics), (
            old,
            caught.value.diagnostics,
        )
        assert "my-tc" in str(caught.value) and str(path) in str(caught.value)


def test_model_default_instance_must_exist(tmp_path):
    instances = write(
        tmp_path, "i.yaml", f'version: "2026.01.01-1"\ninstances:\n  ml.x.large: {GOOD_INSTANCE}\n'
    )
    models = write(
        tmp_path,
        "m.yaml",
        MODEL.replace(
            "    registry: dlc\n", "    registry: dlc\n    default_instance_type: ml.y.large\n"
        ),
    )
    with pytest.raises(InternalError, match="default_instance_type"):
        _load_catalog_files(instances, models)


def test_unreadable_file(tmp_path):
    path = write(tmp_path, "i.yaml", "instances: [unclosed\n")
    with pytest.raises(InternalError, match=re.escape(str(path))):
        _load_instances(path)


# --- organisation additions ----------------------------------------------------------------


def test_extend_adds_and_overrides(catalog):
    tree = {
        "catalog": {
            "instances": {
                "ml.p3.2xlarge": {"price_per_hour": 3.0, "price_source": "enterprise-agreement",
                                  "price_estimated": False},
                "ml.custom.xlarge": {"gpus": 2, "gpu_model": "A10G", "gpu_memory_gib": 24,
                                     "vcpus": 8, "memory_gib": 64, "local_nvme_gb": 0,
                                     "accelerator": "", "price_per_hour": 2.5,
                                     "price_date": "2026-11-01", "price_source": "quote",
                                     "price_estimated": False},
            },
            "models": {
                "huggingface-tc-bert-base-uncased": {"default_hyperparameters": {"epochs": 5}},
                "pytorch-ic-resnet50": {"registry": "",
                                        "ecr_accounts": {"us-east-1": "444455556666"}},
                "acme-tc": {
                    "task": "text-classification", "data_format": "csv-label-text",
                    "framework": "huggingface", "framework_version": "4.26",
                    "image_uri_template": "111122223333.dkr.ecr.{region}.amazonaws.com/acme:1",
                    "batch_size_hyperparameter": "bs",
                    "default_hyperparameters": {"bs": 16},
                    "default_instance_type": "ml.custom.xlarge",
                },
            },
        }
    }  # fmt: skip
    extended = extend_catalog(catalog, tree, {})
    assert extended is not catalog
    p3 = extended.instances["ml.p3.2xlarge"]
    assert (p3.price_per_hour, p3.gpus, p3.price_estimated) == (3.0, 1, False)
    assert gpus_for_batch(extended.instances["ml.custom.xlarge"]) == 2
    bert = extended.models["huggingface-tc-bert-base-uncased"]
    assert bert.default_hyperparameters == {"batch_size": 64, "learning_rate": 5e-5, "epochs": 5}
    assert bert.image_uri("us-east-1") == image_uri(catalog.models[bert.id], "us-east-1")
    assert extended.models["acme-tc"].image_uri("eu-west-1").startswith("111122223333.")
    resnet = extended.models["pytorch-ic-resnet50"]
    assert resnet.regions == ("us-east-1",)
    assert resnet.image_uri("us-east-1").startswith("444455556666.")
    assert extended.versions == catalog.versions
    # the packaged catalog is untouched
    assert catalog.instances["ml.p3.2xlarge"].price_per_hour != 3.0
    assert "acme-tc" not in catalog.models


def test_extend_without_block_is_identity(catalog):
    assert extend_catalog(catalog, {"region": "us-east-1"}, {}) is catalog


def test_extend_reports_every_bad_entry_with_locations(catalog):
    tree = {
        "catalog": {
            "instances": {
                "ml.p3.2xlarge": {"gpus": -1},
                "ml.new.large": {"gpus": 0},
                "notaninstance": dict(catalog.instances["ml.m5.large"].__dict__),
                "ml.m5.xlarge": 3,
            },
            "models": {"pytorch-ic-resnet50": {"task": "translation"}},
            "prices": {},
        }
    }
    tree["catalog"]["instances"]["notaninstance"].pop("name")
    where = "trainspec.defaults.yaml"
    locations = {
        ("catalog",): Location(where, 1, 1),
        ("catalog", "instances", "ml.p3.2xlarge"): Location(where, 3, 5),
        ("catalog", "instances", "ml.p3.2xlarge", "gpus"): Location(where, 3, 22),
        ("catalog", "instances", "ml.new.large"): Location(where, 4, 5),
        ("catalog", "models", "pytorch-ic-resnet50", "task"): Location(where, 9, 15),
    }
    with pytest.raises(SpecError) as caught:
        extend_catalog(catalog, tree, locations)
    found = {d.field_path: d for d in caught.value.diagnostics}
    assert found["catalog.instances.ml.p3.2xlarge.gpus"].location == Location(where, 3, 22)
    assert found["catalog.instances.ml.p3.2xlarge.gpus"].value == -1
    # a missing field is located at its entry
    assert found["catalog.instances.ml.new.large.vcpus"].location == Location(where, 4, 5)
    assert "catalog.instances.notaninstance" in found  # the name must look like ml.*.*
    assert found["catalog.instances.ml.m5.xlarge"].value == 3
    assert found["catalog.models.pytorch-ic-resnet50.task"].location == Location(where, 9, 15)
    assert found["catalog.prices"].location == Location(where, 1, 1)
    assert all(d.code == "catalog.invalid_entry" for d in caught.value.diagnostics)


def test_extend_rejects_non_mapping(catalog):
    with pytest.raises(SpecError) as caught:
        extend_catalog(catalog, {"catalog": ["ml.p3.2xlarge"]}, {})
    assert caught.value.diagnostics[0].field_path == "catalog"


def test_every_specs_source_is_explained_in_the_file_header(catalog):
    # the accelerator figures were read, not remembered: each entry names a key that the
    # header of instances.yaml maps to the page it was read from
    from importlib import resources

    text = resources.files("trainspec.compiler.catalog").joinpath("instances.yaml").read_text()
    header = text.split("\ninstances:", 1)[0]
    explained = set(re.findall(r"^#\s{3}(\S+):", header, flags=re.MULTILINE))
    used = {i.specs_source for i in catalog.instances.values() if i.specs_source}
    assert used and used <= explained
    for key in used:
        # the key's line and its deeper-indented continuation lines
        entry = re.search(rf"^#   {re.escape(key)}:.*(\n#     .*)*", header, re.MULTILINE)
        assert "https://" in entry.group(0) or "commit" in entry.group(0), key


def _describe(name: str, chips: int, cores_per_chip: int, chip_mib: int, vcpus: int, mib: int):
    """One entry as `aws ec2 describe-instance-types` prints it."""
    return {
        "InstanceType": name,
        "VCpuInfo": {"DefaultVCpus": vcpus},
        "MemoryInfo": {"SizeInMiB": mib},
        "NeuronInfo": {
            "NeuronDevices": [
                {
                    "Count": chips,
                    "Name": "Trainium",
                    "CoreInfo": {"Count": cores_per_chip, "Version": 2},
                    "MemoryInfo": {"SizeInMiB": chip_mib},
                }
            ]
        },
    }


def test_refresh_instances_checks_figures_against_ec2(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[2] / "tools" / "refresh_instances.py"
    agreeing = [
        _describe("trn1.32xlarge", 16, 2, 32 * 1024, 128, 512 * 1024),
        # EC2 counts trn2's 8 physical cores a chip; the launcher 4 logical ones
        _describe("trn2.48xlarge", 16, 8, 96 * 1024, 192, 2048 * 1024),
    ]
    saved = tmp_path / "ec2.json"
    saved.write_text(json.dumps({"InstanceTypes": agreeing}))
    ok = subprocess.run([sys.executable, tool, "--ec2", saved], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 differences" in ok.stdout

    wrong = [_describe("trn1.32xlarge", 8, 3, 16 * 1024, 128, 512 * 1024)]
    saved.write_text(json.dumps({"InstanceTypes": wrong}))
    bad = subprocess.run([sys.executable, tool, "--ec2", saved], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "ml.trn1.32xlarge: accelerator_count is 16 here, EC2 says 8" in bad.stdout
    assert "ml.trn1.32xlarge: accelerator_memory_gib is 32 here, EC2 says 16" in bad.stdout
    assert "accelerator_cores 32 does not divide EC2's 24 NeuronCores" in bad.stdout
