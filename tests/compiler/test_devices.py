"""Devices and launchers as SageMaker runs them: what each training process receives,
Trainium counted in NeuronCores, and the SDK's rules on where each launcher runs."""

from __future__ import annotations

import json

import pytest
import yaml
from trainspec._plan import request_of
from trainspec.compiler import SpecError, compile_file

BASE = {
    "name": "ddp",
    "role_arn": "arn:aws:iam::111122223333:role/SageMakerTrainingRole",
    "region": "us-east-1",
    "output": {"path": "s3://acme/jobs/"},
    "model": {"framework": {"name": "pytorch", "version": "2.1", "entry_point": "train.py"}},
    "data": {"train": "s3://acme/train/"},
    "compute": {"instance_type": "ml.p4d.24xlarge", "instance_count": 2},
    "per_device_batch_size": 32,
}


def _compile(tmp_path, **training):
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({"training": {**BASE, **training}}))
    return compile_file(spec, defaults=[])


def _codes(tmp_path, **training) -> set[str]:
    with pytest.raises(SpecError) as raised:
        _compile(tmp_path, **training)
    return {d.code for d in raised.value.diagnostics}


def test_torchrun_workers_each_receive_the_per_device_batch(tmp_path):
    # torchrun starts 8 workers per p4d and every one reads the hyperparameter: giving
    # them the per-instance 256 made the real global batch 8x the plan's
    plan = _compile(tmp_path, distribution={"type": "TORCH_DISTRIBUTED"})
    batch = plan.batch_sizes
    assert request_of(plan)["HyperParameters"]["batch_size"] == "32"
    assert (batch.per_device, batch.per_process, batch.processes_per_host) == (32, 32, 8)
    assert (batch.per_instance, batch.global_batch_size) == (256, 512)
    assert batch.device_kind == "gpu" and batch.devices_per_instance == 8


def test_one_process_per_instance_receives_the_instance_batch(tmp_path):
    plan = _compile(tmp_path)
    batch = plan.batch_sizes
    assert request_of(plan)["HyperParameters"]["batch_size"] == "256"
    assert (batch.per_process, batch.processes_per_host, batch.global_batch_size) == (256, 1, 512)


def test_processes_per_host_is_lowered_and_sets_the_per_process_batch(tmp_path):
    plan = _compile(tmp_path, distribution={"type": "TORCH_DISTRIBUTED", "processes_per_host": 4})
    hyperparameters = request_of(plan)["HyperParameters"]
    # the training toolkit reads this for every launcher; unlowered it was ignored
    assert hyperparameters["sagemaker_mpi_num_of_processes_per_host"] == "4"
    assert hyperparameters["batch_size"] == "64"  # each process drives 2 GPUs
    assert plan.batch_sizes.global_batch_size == 512


def test_a_hyperparameter_batch_is_what_each_process_gets(tmp_path):
    plan = _compile(
        tmp_path,
        per_device_batch_size=None,
        hyperparameters={"batch_size": 16},
        distribution={"type": "TORCH_DISTRIBUTED"},
    )
    batch = plan.batch_sizes
    assert (batch.per_device, batch.per_process, batch.global_batch_size) == (16, 16, 256)


def test_trainium_counts_neuron_cores_and_takes_a_neuron_image(tmp_path):
    model = {"framework": {**BASE["model"]["framework"], "version": "1.11"}}
    plan = _compile(
        tmp_path,
        model=model,
        compute={"instance_type": "ml.trn1.32xlarge"},
        distribution={"type": "TORCH_DISTRIBUTED"},
    )
    batch = plan.batch_sizes
    assert batch.device_kind == "neuron_core" and batch.devices_per_instance == 32
    assert (batch.per_process, batch.processes_per_host, batch.global_batch_size) == (32, 32, 1024)
    image = request_of(plan)["AlgorithmSpecification"]["TrainingImage"]
    # the tag image_uris.retrieve gives for "1.11"
    assert "pytorch-training-neuron:1.11-neuron-" in image and "-cpu-" not in image
    reason = next(
        p.reason for p in plan.provenance if p.field_path == "training.hyperparameters.batch_size"
    )
    assert "NeuronCore" in reason and "CPU" not in reason

    single = _compile(tmp_path, model=model, compute={"instance_type": "ml.trn1.32xlarge"})
    assert request_of(single)["HyperParameters"]["batch_size"] == str(32 * 32)


@pytest.mark.parametrize(
    ("training", "code"),
    [
        # the SDK: "torch_distributed is supported only for GPU and Trainium instances"
        (
            {
                "compute": {"instance_type": "ml.m5.xlarge"},
                "distribution": {"type": "TORCH_DISTRIBUTED"},
            },
            "distribution.torch_distributed_cpu",
        ),
        (
            {
                "model": {"framework": {**BASE["model"]["framework"], "version": "1.11"}},
                "compute": {"instance_type": "ml.trn1.2xlarge"},
                "distribution": {"type": "MPI"},
            },
            "distribution.trainium_launcher",
        ),
        (
            {
                "model": {"framework": {**BASE["model"]["framework"], "entry_point": "train.sh"}},
                "distribution": {"type": "TORCH_DISTRIBUTED"},
            },
            "distribution.torch_distributed_entry_point",
        ),
        ({"distribution": {"processes_per_host": 4}}, "distribution.processes_without_launcher"),
        ({"compute": {"instance_type": "ml.trn1.2xlarge"}}, "image.trainium_version"),
        (
            {
                "model": {
                    "framework": {"name": "xgboost", "version": "1.7-1", "entry_point": "t.py"}
                },
                "compute": {"instance_type": "ml.trn1.2xlarge"},
            },
            "image.trainium_framework",
        ),
        (
            {
                "model": {"pretrained": "huggingface-spc-bert-base-cased"},
                "per_device_batch_size": None,
                "compute": {"instance_type": "ml.trn1.2xlarge"},
            },
            "catalog.unsupported_instance_type",  # the JumpStart spec lists GPUs only
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_launchers_and_images_where_sagemaker_refuses_them(tmp_path, training, code):
    assert code in _codes(tmp_path, **training)


def test_a_custom_image_may_use_torchrun_anywhere(tmp_path):
    # the SDK skips its instance check for a custom image; trainspec does the same
    image = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    plan = _compile(
        tmp_path,
        model={"image": image},
        compute={"instance_type": "ml.m5.xlarge"},
        distribution={"type": "TORCH_DISTRIBUTED"},
    )
    assert json.dumps(request_of(plan)).count(image) == 1
