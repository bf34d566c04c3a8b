"""How a framework container starts the entry point on each host, reproduced on loopback.

Without a distribution the toolkit runs `python -- script.py ARGS` once per host. With one
(torch_distributed, and MPI-style launchers, which start one process per device), the
PyTorch container runs torchrun on every host: `--nnodes` hosts, `--nproc_per_node`
processes, host algo-1 as master. Locally every host is a process group of this machine
and the master is 127.0.0.1 on a free port, so a DDP script runs end to end before anyone
pays for GPUs.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

from trainspec.trainer._container import TrainingRun, count_gpus, entry_args
from trainspec.trainer._toolkit import decode_hyperparameters, entry_command

# Framework parameters whose launcher starts one process per device.
PER_DEVICE_LAUNCHERS = (
    "sagemaker_torch_distributed_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_mpi_enabled",
    "sagemaker_distributed_dataparallel_enabled",
)
PROCESSES_PER_HOST = "sagemaker_mpi_num_of_processes_per_host"


def launcher(run: TrainingRun) -> str | None:
    """The per-device launcher the plan asks for, or None for one process per host."""
    settings = decode_hyperparameters(run.hyperparameters)
    return next((flag for flag in PER_DEVICE_LAUNCHERS if settings.get(flag) is True), None)


def processes_per_host(run: TrainingRun, local_gpus: int | None = None) -> int:
    """The plan's processes per host, else one per local GPU, else one (gloo on CPU)."""
    settings = decode_hyperparameters(run.hyperparameters)
    asked = settings.get(PROCESSES_PER_HOST)
    if isinstance(asked, int) and asked > 0:
        return asked
    gpus = count_gpus() if local_gpus is None else local_gpus
    return max(gpus, 1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def host_commands(run: TrainingRun, master_port: int, python: str = "") -> list[list[str]]:
    """Each host's command line, in host order; `python` runs it (this one by default)."""
    args = entry_args(run)
    hosts = run.hosts
    if launcher(run) is None:
        return [entry_command(run.entry_point, args, python) for _ in hosts]
    per_host = processes_per_host(run)
    return [
        [
            python or sys.executable,
            "-m",
            "torch.distributed.run",  # torchrun, as the PyTorch container runs it
            "--nnodes",
            str(len(hosts)),
            "--nproc_per_node",
            str(per_host),
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(master_port),
            "--node_rank",
            str(rank),
            run.entry_point,
            *args,
        ]
        for rank in range(len(hosts))
    ]


def simulation_notes(run: TrainingRun, plan_gpus: int, local_gpus: int) -> Sequence[str]:
    """What this machine simulates of the plan, and what differs from SageMaker."""
    notes = []
    hosts = run.hosts
    if len(hosts) > 1:
        notes.append(
            f"{len(hosts)} instances run as {len(hosts)} local hosts "
            f"({', '.join(h.name for h in hosts)}) on this machine, talking over loopback"
        )
    kind = launcher(run)
    if kind is not None:
        notes.append(
            f"{kind.removeprefix('sagemaker_').removesuffix('_enabled')}: torchrun starts "
            f"{processes_per_host(run, local_gpus)} process(es) per host"
            + ("" if kind == "sagemaker_torch_distributed_enabled" else " (mpirun is not used)")
        )
    if plan_gpus and not local_gpus:
        notes.append(
            f"the plan's instances have {plan_gpus} GPU(s) each; this machine has none, so "
            "the script runs on the CPU (use the gloo backend when no GPU is visible)"
        )
    return notes
