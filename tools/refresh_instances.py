"""Compare compiler/catalog/instances.yaml with botocore's TrainingInstanceType enum.

Prints the instance types botocore lists that the catalog lacks (as YAML skeleton lines
to fill in and paste under `instances:`) and the catalog entries botocore no longer lists.
Exit status 1 when the two differ. Offline: it reads the botocore installed in the venv.
A new Trainium (trn*) type needs accelerator_count (chips), accelerator_cores (NeuronCores
the training launcher starts a worker for) and a specs_source key that the file's header
maps to the page the figures were read from; the skeleton leaves them for you to fill.

    .venv/bin/python tools/refresh_instances.py
"""

from __future__ import annotations

import sys
from pathlib import Path

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


def main() -> int:
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
    return 1 if missing or extra else 0


if __name__ == "__main__":
    sys.exit(main())
