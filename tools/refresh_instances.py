"""Compare compiler/catalog/instances.yaml with botocore's TrainingInstanceType enum.

Prints the instance types botocore lists that the catalog lacks (as YAML skeleton lines
to fill in and paste under `instances:`) and the catalog entries botocore no longer lists.
Exit status 1 when the two differ. Offline: it reads the botocore installed in the venv.
A new Trainium (trn*) type needs accelerator_count (chips), accelerator_cores (NeuronCores
the training launcher starts a worker for) and a specs_source key that the file's header
maps to the page the figures were read from; the skeleton leaves them for you to fill.

With `--ec2 FILE` it also checks the hardware figures against EC2's own answer, saved with
`aws ec2 describe-instance-types --instance-types trn1.32xlarge ... > FILE` (SageMaker's
`ml.X` is EC2's `X`): vCPUs, memory, NVIDIA GPUs, Trainium chips and their memory, and
that the NeuronCores the launcher counts divide the physical ones (trn2 runs 2 physical
cores as one logical core by default, so EC2 reports twice the catalog's 64).

    .venv/bin/python tools/refresh_instances.py [--ec2 describe-instance-types.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import yaml

CATALOG = Path(__file__).resolve().parent.parent / "compiler" / "catalog" / "instances.yaml"

SKELETON = (
    '  {name}: {{gpus: 0, gpu_model: "", gpu_memory_gib: 0, vcpus: 0, memory_gib: 0, '
    'local_nvme_gb: 0, accelerator: "", price_per_hour: 0, price_date: "YYYY-MM-DD", '
    "price_source: estimate, price_estimated: true, specs_estimated: true}}"
)
ACCELERATOR_SKELETON = (
    '  {name}: {{gpus: 0, gpu_model: "", gpu_memory_gib: 0, vcpus: 0, memory_gib: 0, '
    'local_nvme_gb: 0, accelerator: "trainium?", accelerator_count: 0, '
    "accelerator_memory_gib: 0, accelerator_cores: 0, specs_source: SOURCE-KEY, "
    'price_per_hour: 0, price_date: "YYYY-MM-DD", price_source: estimate, '
    "price_estimated: true, specs_estimated: true}}"
)


def ec2_figures(info: Mapping[str, Any]) -> dict[str, float]:
    """The catalog's hardware fields as one DescribeInstanceTypes entry states them."""
    devices = (info.get("NeuronInfo") or {}).get("NeuronDevices") or []
    figures = {
        "vcpus": info["VCpuInfo"]["DefaultVCpus"],
        "memory_gib": info["MemoryInfo"]["SizeInMiB"] / 1024,
        "gpus": sum(g["Count"] for g in (info.get("GpuInfo") or {}).get("Gpus") or []),
        "accelerator_count": sum(d["Count"] for d in devices),
    }
    if devices:
        figures["accelerator_memory_gib"] = devices[0]["MemoryInfo"]["SizeInMiB"] / 1024
        figures["physical_cores"] = sum(d["Count"] * d["CoreInfo"]["Count"] for d in devices)
    return figures


def ec2_differences(
    instances: Mapping[str, Mapping[str, Any]], described: list[Mapping[str, Any]]
) -> list[str]:
    """Every catalog figure that EC2's answer contradicts, one line each."""
    lines = []
    for info in sorted(described, key=lambda i: i["InstanceType"]):
        name = "ml." + info["InstanceType"]
        entry = instances.get(name)
        if entry is None:
            continue
        figures = ec2_figures(info)
        physical = figures.pop("physical_cores", 0)
        for key, value in figures.items():
            if entry.get(key, 0) != value:
                lines.append(f"{name}: {key} is {entry.get(key, 0)} here, EC2 says {value:g}")
        cores = entry.get("accelerator_cores", 0)
        if physical and (not cores or physical % cores):
            lines.append(
                f"{name}: accelerator_cores {cores} does not divide EC2's {physical} NeuronCores"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ec2", type=Path, help="saved `aws ec2 describe-instance-types` JSON")
    args = parser.parse_args()
    model = botocore.session.get_session().get_service_model("sagemaker")
    enum = [v for v in model.shape_for("TrainingInstanceType").enum if v.startswith("ml.")]
    listed = set(yaml.safe_load(CATALOG.read_text(encoding="utf-8"))["instances"])
    missing = [name for name in enum if name not in listed]
    extra = sorted(listed - set(enum))
    print(
        f"botocore {botocore.__version__}: {len(enum)} ml.* training instance types; "
        f"catalog: {len(listed)}"
    )
    if missing:
        print(f"\n# missing from {CATALOG.name} (fill in every 0 and the date):")
        for name in missing:
            family = name.split(".")[1]
            template = ACCELERATOR_SKELETON if family.startswith("trn") else SKELETON
            print(template.format(name=name))
    if extra:
        print(f"\n# in {CATALOG.name} but not in botocore's enum:")
        for name in extra:
            print(f"  {name}")
    differences = []
    if args.ec2 is not None:
        described = json.loads(args.ec2.read_text(encoding="utf-8"))["InstanceTypes"]
        instances = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))["instances"]
        differences = ec2_differences(instances, described)
        print(f"\n# EC2 ({args.ec2}): {len(described)} types, {len(differences)} differences")
        for line in differences:
            print(f"  {line}")
    return 1 if missing or extra or differences else 0


if __name__ == "__main__":
    sys.exit(main())
