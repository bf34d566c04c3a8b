"""The packaged catalogs, their schema checks, organisation additions and image URIs."""

from __future__ import annotations

import dataclasses
import re
import textwrap

import botocore.session
import pytest
from trainspec.compiler._diagnostics import InternalError, Location, SpecError
from trainspec.compiler.catalog._catalog import (
    Catalog,
    _load_instances,
    extend_catalog,
    gpus_for_batch,
    load_catalog,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def training_instance_enum() -> set[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return {v for v in model.shape_for("TrainingInstanceType").enum if v.startswith("ml.")}


def test_loads_once_with_versions(catalog):
    assert load_catalog() is catalog
    assert set(catalog.versions) == {"instances", "models"}
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}-\d+", catalog.versions["instances"])
    assert catalog.versions["models"] == "v2.257.6"  # the SDK tag the specs were copied at


def test_catalog_is_read_only(catalog):
    with pytest.raises(TypeError):
        catalog.instances["ml.x.large"] = None  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.instances["ml.p3.2xlarge"].gpus = 2  # type: ignore[misc]


@pytest.mark.pinned  # the catalog follows constraints.txt's botocore, not its floor
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


def test_models_are_jumpstart_specs_with_their_sources(catalog):
    by_task = {}
    for model in catalog.models.values():
        by_task.setdefault(model.task, []).append(model)
        assert model.batch_size_hyperparameter in model.default_hyperparameters
        assert model.default_instance_type in catalog.instances
        assert model.default_dataset_uri("us-east-1").startswith("s3://jumpstart-cache-prod-")
        assert model.default_dataset_uri("us-east-1").endswith("/")
        assert "sagemaker-python-sdk@v2.257.6" in model.source
        for _, regex in model.metric_definitions:
            assert re.compile(regex).groups == 1
    assert len(by_task["sentence-pair-classification"]) >= 1
    assert len(by_task["image-classification"]) >= 2
    bert = catalog.models["huggingface-spc-bert-base-cased"]
    assert (bert.version, bert.per_device_batch_size) == ("2.0.3", 8)
    assert bert.data_format == "csv-label-text-pair"  # label, sentence 1, sentence 2
    assert bert.default_hyperparameters["adam-learning-rate"] == pytest.approx(2e-5)
    assert bert.learning_rate_hyperparameter == "adam-learning-rate"
    mobilenet = catalog.models["pytorch-ic-mobilenet-v2"]
    assert mobilenet.data_format == "image-folders"
    assert (mobilenet.per_device_batch_size, mobilenet.epochs_hyperparameter) == (4, "epochs")


def test_image_uri_per_instance_type_and_region(catalog):
    model = catalog.models["pytorch-ic-mobilenet-v2"]
    assert model.image_uri("us-west-2", "ml.p3.2xlarge") == (
        "763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-training:1.10.0-gpu-py38"
    )
    assert model.image_uri("eu-west-1", "ml.m5.xlarge").endswith(":1.10.0-cpu-py38")
    assert model.image_uri("af-south-1", "ml.m5.xlarge").startswith("626614931356.")
    assert model.image_uri("xx-nowhere-9", "ml.m5.xlarge") is None
    assert model.image_uri("us-west-2", "ml.x99.large") is None


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


def test_the_committed_parsed_twin_is_the_yaml_file_parsed():
    """The *.parsed.json twins spare every process parsing packaged YAML; regenerate them
    with tools/gen_parsed_catalogs.py after editing the YAML."""
    import json
    from importlib import resources

    from trainspec.compiler.catalog._yaml_data import PARSED_TWINS, parsed_twin

    folder = resources.files("trainspec.compiler.catalog")
    for source, twin in PARSED_TWINS.items():
        committed = json.loads(folder.joinpath(twin).read_text(encoding="utf-8"))
        assert committed == parsed_twin(folder.joinpath(source)), "run tools/gen_parsed_catalogs.py"


def test_a_twin_is_read_only_while_it_matches_its_yaml_file(tmp_path):
    import json

    from trainspec.compiler.catalog._yaml_data import parsed_twin

    path = write(
        tmp_path, "i.yaml", f'version: "2026.01.01-1"\ninstances:\n  ml.x.large: {GOOD_INSTANCE}\n'
    )
    twin = parsed_twin(path)
    twin["document"]["instances"]["ml.x.large"]["vcpus"] = 96  # what only the twin says
    twin_path = tmp_path / "i.parsed.json"
    twin_path.write_text(json.dumps(twin))
    assert _load_instances(path, twin_path)[1]["ml.x.large"].vcpus == 96
    path.write_text(path.read_text().replace("vcpus: 4", "vcpus: 8"))  # the YAML is edited
    assert _load_instances(path, twin_path)[1]["ml.x.large"].vcpus == 8
    twin_path.write_text("{not json")
    assert _load_instances(path, twin_path)[1]["ml.x.large"].vcpus == 8


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
        }
    }  # fmt: skip
    extended = extend_catalog(catalog, tree, {})
    assert extended is not catalog
    p3 = extended.instances["ml.p3.2xlarge"]
    assert (p3.price_per_hour, p3.gpus, p3.price_estimated) == (3.0, 1, False)
    assert gpus_for_batch(extended.instances["ml.custom.xlarge"]) == 2
    assert extended.models == catalog.models
    assert extended.versions == catalog.versions
    # the packaged catalog is untouched
    assert catalog.instances["ml.p3.2xlarge"].price_per_hour != 3.0


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
            "jumpstart_specs": "one.json",
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
        ("catalog", "models"): Location(where, 9, 3),
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
    assert found["catalog.models"].location == Location(where, 9, 3)  # JumpStart specs now
    assert "jumpstart_specs" in found["catalog.models"].hint
    assert "catalog.jumpstart_specs" in found  # a list of files, not one
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


@pytest.mark.pinned  # the tool checks the catalog against constraints.txt's botocore
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
