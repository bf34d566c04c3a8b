"""The lower pass for training jobs: the exact boto3 keyword arguments of CreateTrainingJob.

Values as the API has them: hyperparameters as strings, enum spellings such as `FastFile`
and `ShardedByS3Key`, keys omitted rather than None. AlgorithmSpecification,
ResourceConfig and StoppingCondition are always present.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trainspec.compiler._infer import PER_DEVICE_LAUNCHERS, Inferred, is_local
from trainspec.compiler.catalog._jumpstart import MODEL_CONTENT_TYPE
from trainspec.compiler.lower._incremental import with_model_channel

# Proto enum value -> SageMaker API spelling.
_API_ENUMS = {
    "INPUT_MODE_FILE": "File",
    "INPUT_MODE_PIPE": "Pipe",
    "INPUT_MODE_FAST_FILE": "FastFile",
    "COMPRESSION_NONE": "None",
    "COMPRESSION_GZIP": "Gzip",
    "S3_DATA_TYPE_S3_PREFIX": "S3Prefix",
    "S3_DATA_TYPE_MANIFEST_FILE": "ManifestFile",
    "S3_DATA_TYPE_AUGMENTED_MANIFEST_FILE": "AugmentedManifestFile",
    "S3_DATA_DISTRIBUTION_FULLY_REPLICATED": "FullyReplicated",
    "S3_DATA_DISTRIBUTION_SHARDED_BY_S3_KEY": "ShardedByS3Key",
    "RECORD_WRAPPER_NONE": "None",
    "RECORD_WRAPPER_RECORD_IO": "RecordIO",
    "FILE_SYSTEM_TYPE_EFS": "EFS",
    "FILE_SYSTEM_TYPE_FSX_LUSTRE": "FSxLustre",
    "OUTPUT_COMPRESSION_GZIP": "GZIP",
    "OUTPUT_COMPRESSION_NONE": "NONE",
}

# The distribution launcher, as SageMaker's framework containers read it.
_DISTRIBUTION_HYPERPARAMETERS = {
    "DISTRIBUTION_TYPE_TORCH_DISTRIBUTED": {"sagemaker_torch_distributed_enabled": "true"},
    "DISTRIBUTION_TYPE_MPI": {"sagemaker_mpi_enabled": "true"},
    "DISTRIBUTION_TYPE_PARAMETER_SERVER": {"sagemaker_parameter_server_enabled": "true"},
    "DISTRIBUTION_TYPE_SMDDP": {"sagemaker_distributed_dataparallel_enabled": "true"},
}

PROCESSES_PER_HOST_HYPERPARAMETER = "sagemaker_mpi_num_of_processes_per_host"

SIFTING_ENVIRONMENT_VARIABLE = "TRAINSPEC_SIFTING"


def hyperparameter_string(value: Any) -> str:
    """SageMaker takes every hyperparameter as a string; booleans as JSON spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # a JobSpec message's Value holds 2 as 2.0: same as YAML's 2
    return str(value)


def lower_training(inferred: Inferred) -> dict[str, Any]:
    """The CreateTrainingJob request for a checked training job."""
    training = inferred.training
    request: dict[str, Any] = {
        "TrainingJobName": training["name"],
        "AlgorithmSpecification": _algorithm(inferred),
        "RoleArn": training["role_arn"],
        "OutputDataConfig": _output(training),
        "ResourceConfig": _resources(training),
        "StoppingCondition": _stopping(training),
    }
    hyperparameters = lowered_hyperparameters(inferred)
    if hyperparameters:
        request["HyperParameters"] = hyperparameters
    channels = [
        _channel(inferred, name, spec) for name, spec in sorted(training.get("data", {}).items())
    ]
    if inferred.pretrained is not None:
        channels = [*map(_fully_replicated, channels), *_pretrained_channels(inferred)]
    if inferred.start is not None:
        channels = with_model_channel(channels, inferred.start)
    if channels:
        request["InputDataConfig"] = channels
    network = training.get("network", {})
    if network.get("subnets") or network.get("security_group_ids"):
        request["VpcConfig"] = {
            "SecurityGroupIds": list(network.get("security_group_ids", [])),
            "Subnets": list(network.get("subnets", [])),
        }
    if network.get("network_isolation"):
        request["EnableNetworkIsolation"] = True
    if network.get("inter_container_encryption"):
        request["EnableInterContainerTrafficEncryption"] = True
    if training.get("compute", {}).get("spot"):
        request["EnableManagedSpotTraining"] = True
    checkpoint = training.get("checkpoint", {})
    if checkpoint.get("s3_uri"):
        request["CheckpointConfig"] = {"S3Uri": checkpoint["s3_uri"]}
        if checkpoint.get("local_path"):
            request["CheckpointConfig"]["LocalPath"] = checkpoint["local_path"]
    environment = dict(training.get("environment", {}))
    if training.get("sifting"):
        environment[SIFTING_ENVIRONMENT_VARIABLE] = sifting_json(training["sifting"])
    if environment:
        request["Environment"] = dict(sorted(environment.items()))
    if training.get("max_retry_attempts"):
        request["RetryStrategy"] = {"MaximumRetryAttempts": training["max_retry_attempts"]}
    tags = training.get("tags", {})
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    return request


def sifting_json(sifting: Mapping[str, Any]) -> str:
    """The sifting block as trainspec.trainer.sifting.config_from_env() reads it."""
    return json.dumps(dict(sorted(sifting.items())), separators=(",", ":"))


def lowered_hyperparameters(inferred: Inferred) -> dict[str, str]:
    training = inferred.training
    values = {k: hyperparameter_string(v) for k, v in training.get("hyperparameters", {}).items()}
    if inferred.pretrained is not None:
        # A JumpStart default is sent as the SDK sends it (str of the spec's value: 0.0
        # stays "0.0"); a value the user gave follows the rule above.
        for name, default in inferred.pretrained.default_hyperparameters.items():
            value = training.get("hyperparameters", {}).get(name)
            if type(value) is type(default) and value == default:
                values[name] = str(default)
    values.update(inferred.script_mode)
    distribution = training.get("distribution", {})
    values.update(_DISTRIBUTION_HYPERPARAMETERS.get(distribution.get("type", ""), {}))
    if distribution.get("processes_per_host") and distribution.get("type") in PER_DEVICE_LAUNCHERS:
        # The training toolkit reads it for every launcher (runner.py); without it the
        # launcher starts one process per device and the batch sizes would not hold.
        values[PROCESSES_PER_HOST_HYPERPARAMETER] = str(distribution["processes_per_host"])
    return dict(sorted(values.items()))


def _algorithm(inferred: Inferred) -> dict[str, Any]:
    algorithm: dict[str, Any] = {
        "TrainingImage": inferred.image_uri,
        "TrainingInputMode": "File",
    }
    modes = {spec.get("input_mode") for spec in inferred.training.get("data", {}).values()}
    if len(modes) == 1 and next(iter(modes)):
        algorithm["TrainingInputMode"] = _API_ENUMS[next(iter(modes))]
    metrics = inferred.training.get("metrics", [])
    if metrics:
        algorithm["MetricDefinitions"] = [{"Name": m["name"], "Regex": m["regex"]} for m in metrics]
    return algorithm


def _output(training: Mapping[str, Any]) -> dict[str, Any]:
    output = training.get("output", {})
    lowered: dict[str, Any] = {"S3OutputPath": output["path"]}
    if output.get("kms_key_id"):
        lowered["KmsKeyId"] = output["kms_key_id"]
    if output.get("compression"):
        lowered["CompressionType"] = _API_ENUMS[output["compression"]]
    return lowered


def _resources(training: Mapping[str, Any]) -> dict[str, Any]:
    compute = training.get("compute", {})
    lowered: dict[str, Any] = {"VolumeSizeInGB": compute.get("volume_size_gb", 30)}
    groups = compute.get("instance_groups") or []
    if groups:
        lowered["InstanceGroups"] = [
            {
                "InstanceType": g["instance_type"],
                "InstanceCount": g.get("instance_count", 1),
                "InstanceGroupName": g["name"],
            }
            for g in groups
        ]
    else:
        lowered["InstanceType"] = compute["instance_type"]
        lowered["InstanceCount"] = compute.get("instance_count", 1)
    if compute.get("volume_kms_key_id"):
        lowered["VolumeKmsKeyId"] = compute["volume_kms_key_id"]
    if compute.get("keep_alive_seconds"):
        lowered["KeepAlivePeriodInSeconds"] = compute["keep_alive_seconds"]
    return lowered


def _stopping(training: Mapping[str, Any]) -> dict[str, Any]:
    stopping = training.get("stopping", {})
    lowered = {"MaxRuntimeInSeconds": stopping.get("max_runtime_seconds", 86400)}
    if stopping.get("max_wait_seconds"):
        lowered["MaxWaitTimeInSeconds"] = stopping["max_wait_seconds"]
    if stopping.get("max_pending_seconds"):
        lowered["MaxPendingTimeInSeconds"] = stopping["max_pending_seconds"]
    return lowered


def _pretrained_channels(inferred: Inferred) -> list[dict[str, Any]]:
    """The JumpStart spec's pretrained weights (`model`) and, under network isolation, its
    training script (`code`), as JumpStartEstimator adds them."""
    channels = []
    for name, uri in inferred.extras.get("pretrained_channels", {}).items():
        channel: dict[str, Any] = {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataDistributionType": "FullyReplicated",
                    "S3DataType": "S3Prefix",
                    "S3Uri": uri,
                }
            },
        }
        if name == "model":
            channel["ContentType"] = MODEL_CONTENT_TYPE
            channel["InputMode"] = "File"
        channels.append(channel)
    return channels


def _fully_replicated(channel: dict[str, Any]) -> dict[str, Any]:
    # the SDK names SageMaker's default distribution on every channel of a JumpStart job
    s3 = channel["DataSource"].get("S3DataSource")
    if s3 is not None and "S3DataDistributionType" not in s3:
        s3 = {**s3, "S3DataDistributionType": "FullyReplicated"}
        return {**channel, "DataSource": {"S3DataSource": s3}}
    return channel


def _channel(inferred: Inferred, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    channel: dict[str, Any] = {"ChannelName": name}
    file_system = spec.get("file_system")
    if file_system:
        channel["DataSource"] = {
            "FileSystemDataSource": {
                "FileSystemId": file_system["id"],
                "FileSystemAccessMode": "rw" if file_system.get("read_write") else "ro",
                "FileSystemType": _API_ENUMS[file_system["type"]],
                "DirectoryPath": file_system["directory_path"],
            }
        }
    else:
        uri = spec["uri"]
        if is_local(uri):  # uploaded by `trainspec submit` before the job is created
            uri = inferred.local_uploads[uri]
        s3: dict[str, Any] = {
            "S3DataType": _API_ENUMS[spec.get("s3_data_type", "S3_DATA_TYPE_S3_PREFIX")],
            "S3Uri": uri,
        }
        if spec.get("distribution"):
            s3["S3DataDistributionType"] = _API_ENUMS[spec["distribution"]]
        channel["DataSource"] = {"S3DataSource": s3}
    for key, api_key in (("content_type", "ContentType"),):
        if spec.get(key):
            channel[api_key] = spec[key]
    for key, api_key in (
        ("compression", "CompressionType"),
        ("record_wrapper", "RecordWrapperType"),
        ("input_mode", "InputMode"),
    ):
        if spec.get(key):
            channel[api_key] = _API_ENUMS[spec[key]]
    if "shuffle_seed" in spec:
        channel["ShuffleConfig"] = {"Seed": spec["shuffle_seed"]}
    return channel
