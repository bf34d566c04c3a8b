"""The entry point's view of SageMaker's training toolkit: the argv and SM_* environment.

Inside SageMaker's framework containers, the `sagemaker-training` package reads
/opt/ml/input/config and starts the entry point with arguments and variables it derives
from them. This module derives the same from the same files' contents, for a job folder
playing /opt/ml, so a script sees locally exactly what it will see on SageMaker.
tests/trainer/test_toolkit_parity.py compares the result with the toolkit's own
`Environment()` over the same folder. Mirrors sagemaker-training 5.1
(sagemaker_training/environment.py, mapping.py, params.py, process.py).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Hyperparameters the toolkit keeps for itself (params.SAGEMAKER_HYPERPARAMETERS): they
# reach neither the script nor the framework parameters. Every other `sagemaker_*` one is
# a framework parameter (SM_FRAMEWORK_PARAMS).
TOOLKIT_OWN = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
SAGEMAKER_PREFIX = "sagemaker_"
# Framework parameters that put the current instance group into distribution.
DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)
INFO = 20  # logging.INFO, the toolkit's default log level


@dataclass(frozen=True)
class ToolkitView:
    """What the toolkit hands one host's entry point."""

    env: dict[str, str]  # the SM_* variables
    args: list[str]  # the script's arguments (SM_USER_ARGS)
    framework_params: dict[str, Any]  # the `sagemaker_*` settings that are not its own


def decode_hyperparameters(raw: Mapping[str, str]) -> dict[str, Any]:
    """hyperparameters.json's strings, each JSON-decoded where it can be (`"1e-3"` is 0.001,
    `"true"` is True, `"True"` stays a string), as `read_hyperparameters` does."""
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (ValueError, TypeError):
            decoded[key] = value
    return decoded


def cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """`--name value` pairs, keys sorted, `-x` for one-letter names, values as str()
    prints them (True, 0.001, [1, 2]) and mappings as `k=v,k2=v2` (mapping.to_cmd_args)."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        name = str(key)
        value = hyperparameters[key]
        if hasattr(value, "items"):
            value = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        args += [f"--{name}" if len(name) > 1 else f"-{name}", _text(value)]
    return args


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def toolkit_view(
    base_dir: str,
    *,
    hyperparameters: Mapping[str, str],
    resource_config: Mapping[str, Any],
    input_data_config: Mapping[str, Any],
    job_name: str,
    num_cpus: int,
    num_gpus: int = 0,
    num_neurons: int = 0,
) -> ToolkitView:
    """The toolkit's view for `base_dir` (one host's /opt/ml) and its config files' data."""
    code_dir = os.path.join(base_dir, "code")
    input_dir = os.path.join(base_dir, "input")
    output_dir = os.path.join(base_dir, "output")
    decoded = decode_hyperparameters(hyperparameters)
    own = {k: v for k, v in decoded.items() if k in TOOLKIT_OWN or k.startswith(SAGEMAKER_PREFIX)}
    user = {k: v for k, v in decoded.items() if k not in own}
    framework = {k: v for k, v in own.items() if k not in TOOLKIT_OWN}

    hosts = list(resource_config["hosts"])
    current_host = resource_config["current_host"]
    group = resource_config.get("current_group_name", "homogeneousCluster")
    groups_config = resource_config.get("instance_groups", [])
    groups = [g["instance_group_name"] for g in groups_config]
    groups_dict = {g["instance_group_name"]: g for g in groups_config}
    group_hosts: list[str] = next(
        (g["hosts"] for g in groups_config if g["instance_group_name"] == group), []
    )
    distributed_groups = framework.get(
        "sagemaker_distribution_instance_groups",
        [group] if any(framework.get(flag, False) for flag in DISTRIBUTION_FLAGS) else [],
    )
    if groups_config:
        distribution_hosts = [
            h
            for g in groups_config
            if g["instance_group_name"] in distributed_groups
            for h in g["hosts"]
        ]
    else:
        distribution_hosts = list(hosts)
    master = distribution_hosts[0] if distribution_hosts else hosts[0]
    program = own.get("sagemaker_program")
    channel_dirs = {c: os.path.join(input_dir, "data", c) for c in input_data_config}
    args = cmd_args(user)
    properties = {
        "additional_framework_parameters": framework,
        "channel_input_dirs": channel_dirs,
        "current_host": current_host,
        "current_instance_group": group,
        "current_instance_group_hosts": group_hosts,
        "current_instance_type": resource_config.get("current_instance_type", "local"),
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distributed_groups,
        "framework_module": None,  # set by each framework's image, which local runs lack
        "hosts": hosts,
        "hyperparameters": user,
        "input_config_dir": os.path.join(input_dir, "config"),
        "input_data_config": dict(input_data_config),
        "input_dir": input_dir,
        "instance_groups": groups,
        "instance_groups_dict": groups_dict,
        "is_hetero": len(groups) > 1,
        "is_master": current_host == master,
        "is_modelparallel_enabled": None,
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": job_name,
        "log_level": own.get("sagemaker_container_log_level", INFO),
        "master_hostname": master,
        "model_dir": os.path.join(base_dir, "model"),
        "module_dir": str(own.get("sagemaker_submit_directory", code_dir)),
        "module_name": _module_name(str(program)),
        "network_interface_name": resource_config.get("network_interface_name", "eth0"),
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "num_neurons": num_neurons,
        "output_data_dir": os.path.join(output_dir, "data"),
        "output_dir": output_dir,
        "output_intermediate_dir": os.path.join(output_dir, "intermediate"),
        "resource_config": dict(resource_config),
        "topology": resource_config.get("topology", []),
        "user_entry_point": program,
    }
    env: dict[str, Any] = {
        name: properties[name]
        for name in (
            "hosts",
            "network_interface_name",
            "user_entry_point",
            "resource_config",
            "input_data_config",
            "output_data_dir",
            "current_host",
            "current_instance_type",
            "current_instance_group",
            "current_instance_group_hosts",
            "instance_groups",
            "instance_groups_dict",
            "distribution_instance_groups",
            "is_hetero",
            "module_name",
            "log_level",
            "framework_module",
            "input_dir",
            "input_config_dir",
            "output_dir",
            "num_cpus",
            "num_gpus",
            "num_neurons",
            "model_dir",
            "module_dir",
            "output_intermediate_dir",
        )
    }
    env.update(
        hps=user,
        framework_params=framework,
        channels=sorted(channel_dirs),
        training_env=properties,
        user_args=args,
    )
    if properties["topology"]:
        env["topology"] = properties["topology"]
    env.update({f"channel_{name}": path for name, path in channel_dirs.items()})
    env.update({f"hp_{key}": value for key, value in user.items()})
    return ToolkitView(
        env={f"SM_{str(key).upper()}": _env_value(value) for key, value in env.items()},
        args=args,
        framework_params=framework,
    )


def _module_name(program: str) -> str:
    return program[:-3] if program.endswith(".py") else program


def entry_command(entry_point: str, args: Sequence[str], python: str = "") -> list[str]:
    """How the toolkit starts a Python entry point: `python -- script.py ARGS` (the `--`
    keeps a script name from being read as an interpreter option)."""
    return [python or sys.executable, "--", entry_point, *args]


def process_environment(
    job_name: str, current_host: str, hyperparameters: Mapping[str, str]
) -> dict[str, str]:
    """The variables besides SM_* that SageMaker and the toolkit set for the script: the
    job's name (SageMaker's), and the three the toolkit's Environment() writes."""
    own = decode_hyperparameters(hyperparameters)
    return {
        "TRAINING_JOB_NAME": job_name,
        "SAGEMAKER_JOB_NAME": str(own.get("sagemaker_job_name", "")),
        "CURRENT_HOST": current_host,
        "SAGEMAKER_REGION": str(own.get("sagemaker_region") or ""),
    }
