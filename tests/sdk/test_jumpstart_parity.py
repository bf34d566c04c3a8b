"""Proof (a): a pretrained model's request equals what the SDK v2's JumpStartEstimator sends.

For every model in the packaged catalog, on a GPU and a CPU instance it supports (where
the spec supports one of each), in two regions, with the spec's defaults, with a
hyperparameter of the user's, and with no data (the spec's default data set), the
CreateTrainingJob request trainspec compiles is compared field by field with the one the
SDK builds from the same spec JSON (tests/sdk/jumpstart_requests.py, in the SDK's venv).

The differences that are deliberate, and nothing else, are removed before comparing:

1. batch × GPUs: the spec's default batch size is per device, so trainspec sends it times
   the instance's GPUs (the product's batch rule); the SDK sends the default as is.
2. The job name: the SDK makes one from the model and a timestamp; trainspec uses the
   spec's `name` plus a digest of the request. The test gives the SDK trainspec's name
   (which `sagemaker_job_name` then carries too), so the two agree.
3. Hyperparameter encoding: the SDK JSON-encodes each value (`"\\"3\\""`), trainspec sends
   the plain string; SageMaker's training toolkit decodes both to the same argument.
4. Debugger and Profiler: the SDK turns on its DebugHookConfig and ProfilerConfig by
   default; trainspec requests neither.
5. Channel order: trainspec sorts the user's channels and puts `model` and `code` after
   them; SageMaker keys channels by name.
6. The default data set: with no data, trainspec adds the spec's default data set as
   channel `training` (with a note); the SDK's `fit()` sends no data. The SDK is given
   that data set's URI, as the SDK's own tests do.

Every packaged spec runs in network isolation, so one more spec is derived from
pytorch-ic-mobilenet-v2 without it (added through a defaults file's
`catalog.jumpstart_specs`): there the script goes in `sagemaker_submit_directory` as an
S3 URI instead of a `code` channel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from trainspec._plan import request_of
from trainspec.compiler import compile_file, load_catalog

ROLE = "arn:aws:iam::111122223333:role/SageMakerTrainingRole"
OUTPUT = "s3://acme-ml-artifacts/jobs/"
REGIONS = ("us-west-2", "eu-central-1")
SPECS = Path(__file__).resolve().parents[2] / "compiler" / "catalog" / "jumpstart"


def _instances(model) -> list[str]:
    """The supported GPU instance with the most GPUs (so the batch rule shows) and the
    first supported CPU instance, where the spec supports them."""
    instances = load_catalog().instances
    known = [instances[n] for n in model.supported_instance_types if n in instances]
    gpu = sorted((i for i in known if i.gpus), key=lambda i: -i.gpus)[:1]
    cpu = [i for i in known if not i.gpus][:1]
    return [i.name for i in gpu + cpu]


OPEN_MODEL = "pytorch-ic-mobilenet-v2-open"
EARLIER_MODEL = "s3://acme-ml-artifacts/jobs/earlier-job/output/model.tar.gz"


def _open_spec(folder: Path) -> Path:
    """pytorch-ic-mobilenet-v2's spec without network isolation, as another model id."""
    spec = json.loads((SPECS / "pytorch-ic-mobilenet-v2.json").read_text())
    spec["model_id"], spec["training_enable_network_isolation"] = OPEN_MODEL, False
    path = folder / f"{OPEN_MODEL}.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


def _cases(open_spec: Path | None = None) -> list[dict]:
    cases = []
    models = dict(load_catalog().models)
    if open_spec is not None:
        models[OPEN_MODEL] = models["pytorch-ic-mobilenet-v2"]
    for model_id, model in sorted(models.items()):
        instances = _instances(model)
        assert instances, f"{model_id}: no supported instance in the instance catalog"
        epochs = model.epochs_hyperparameter
        for instance in instances:
            for region in REGIONS:
                # Incremental training (model.from_artifact, the SDK's model_uri) once per
                # model and region.
                incremental = ("incremental",) if instance == instances[0] else ()
                for variant in ("defaults", "user", "no-data", *incremental):
                    name = f"{model_id[:40]}-{variant}".rstrip("-")
                    hyperparameters = {epochs: 2} if variant == "user" and epochs else {}
                    data = None if variant == "no-data" else f"s3://acme-ml/{model_id}/train/"
                    cases.append(
                        {
                            "model": model_id,
                            "region": region,
                            "instance_type": instance,
                            "hyperparameters": hyperparameters,
                            "data": data,
                            "name": name,
                            "spec_file": str(open_spec) if model_id == OPEN_MODEL else "",
                            "model_uri": EARLIER_MODEL if variant == "incremental" else "",
                        }
                    )
    return cases


def _compile(tmp_path: Path, case: dict) -> dict:
    training = {
        "name": case["name"],
        "role_arn": ROLE,
        "region": case["region"],
        "output": {"path": OUTPUT},
        "model": {"pretrained": case["model"]},
        "compute": {"instance_type": case["instance_type"]},
    }
    if case["model_uri"]:
        training["model"]["from_artifact"] = case["model_uri"]
    if case["hyperparameters"]:
        training["hyperparameters"] = case["hyperparameters"]
    if case["data"]:
        training["data"] = {"training": case["data"]}
    spec = tmp_path / f"{case['name']}-{case['region']}-{case['instance_type']}.yaml"
    spec.write_text(yaml.safe_dump({"training": training}))
    defaults = []
    if case["spec_file"]:
        defaults = [tmp_path / "trainspec.defaults.yaml"]
        catalog = {"catalog": {"jumpstart_specs": [case["spec_file"]]}}
        defaults[0].write_text(yaml.safe_dump(catalog))
    return request_of(compile_file(spec, defaults=defaults))


def _sdk_case(case: dict, job_name: str) -> dict:
    model = load_catalog().models[case["model"].removesuffix("-open")]
    data = case["data"] or model.default_dataset_uri(case["region"])  # difference 6
    return {
        "spec": case["spec_file"] or str(SPECS / f"{case['model']}.json"),
        "region": case["region"],
        "instance_type": case["instance_type"],
        "hyperparameters": {k: str(v) for k, v in case["hyperparameters"].items()},
        "inputs": {"training": data},
        "job_name": job_name,  # difference 2
        "role": ROLE,
        "output_path": OUTPUT,
        "model_uri": case["model_uri"] or None,
    }


def _decoded(value: str) -> str:
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def _normalised(request: dict) -> dict:
    request = dict(request)
    request.pop("DebugHookConfig", None)  # difference 4
    request.pop("ProfilerConfig", None)
    request["HyperParameters"] = {  # difference 3
        k: _decoded(v) for k, v in request.get("HyperParameters", {}).items()
    }
    request["InputDataConfig"] = {  # difference 5
        c["ChannelName"]: c for c in request.get("InputDataConfig", [])
    }
    request["Tags"] = sorted(request.get("Tags", []), key=lambda t: t["Key"])
    return request


@pytest.fixture(scope="module")
def sdk_requests(run_sdk, tmp_path_factory):
    """(cases, trainspec's requests, the SDK's requests)."""
    cases = _cases(_open_spec(tmp_path_factory.mktemp("open")))
    folder = tmp_path_factory.mktemp("specs")
    ours = [_compile(folder, case) for case in cases]
    sdk_cases = [_sdk_case(c, r["TrainingJobName"]) for c, r in zip(cases, ours, strict=True)]
    return cases, ours, run_sdk("jumpstart_requests.py", sdk_cases)


def test_every_catalog_model_has_gpu_or_cpu_cases_in_two_regions():
    cases = _cases()
    for model_id in load_catalog().models:
        mine = [c for c in cases if c["model"] == model_id]
        assert {c["region"] for c in mine} == set(REGIONS)
    assert len(cases) >= 3 * 2 * 3


def test_requests_equal_jumpstart_estimator(sdk_requests):
    cases, compiled, expected = sdk_requests
    instances = load_catalog().instances
    for case, ours, sdk in zip(cases, compiled, expected, strict=True):
        ours = _normalised(ours)
        sdk = _normalised(sdk)
        model = load_catalog().models[case["model"].removesuffix("-open")]
        batch = model.batch_size_hyperparameter
        gpus = instances[case["instance_type"]].gpus or 1
        # difference 1: the spec's default batch is per device
        assert ours["HyperParameters"][batch] == str(int(sdk["HyperParameters"][batch]) * gpus)
        ours["HyperParameters"][batch] = sdk["HyperParameters"][batch]
        assert ours == sdk, f"{case}: differs from JumpStartEstimator"
        if case["spec_file"]:  # no isolation: the script is named, not sent as a channel
            assert "code" not in ours["InputDataConfig"]
            assert ours["HyperParameters"]["sagemaker_submit_directory"].startswith("s3://")
