"""Generate catalog data from JSON files bundled with the SageMaker Python SDK.

compiler/catalog/framework_images.json from the SDK's image_uri_config, and
compiler/catalog/jumpstart/regions.json (JumpStart's content bucket in each region it
launched in) from sagemaker/jumpstart/region_config.json.

The SDK ships one JSON file per framework (sagemaker/image_uri_config/<name>.json) that its
`image_uris.retrieve` reads. This keeps their training scope for the frameworks trainspec
runs (versions, version aliases, Python versions, processors, repositories, container
versions, regions and accounts), with each distinct region -> account table stored once,
plus the ECR host of every region as the SDK's botocore resolves it. Run it with the
interpreter of the SDK's own environment (the compiler never imports the SDK):

    .venv-sdk/bin/python tools/gen_sdk_catalogs.py

The SDK version is recorded in each output; tests/sdk/test_image_parity.py compares every
image the file can produce with `image_uris.retrieve` of the pinned SDK.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import sagemaker
from sagemaker import image_uris, utils

CATALOG = Path(__file__).resolve().parent.parent / "compiler" / "catalog"
OUT = CATALOG / "framework_images.json"
REGIONS_OUT = CATALOG / "jumpstart" / "regions.json"
# trainspec framework name -> the SDK's config file; `pytorch-neuron` serves Trainium.
FRAMEWORKS = ("pytorch", "pytorch-neuron", "tensorflow", "huggingface", "xgboost", "sklearn")
KEEP = (
    "container_version",
    "processors",
    "py_versions",
    "repository",
    "sdk_versions",
    "tag_prefix",
    "version_aliases",
)


def _host(region: str) -> str:
    endpoint = utils._botocore_resolver().construct_endpoint("ecr", region)
    if region == "il-central-1" and not endpoint:  # as image_uris.retrieve does
        return f"ecr.{region}.amazonaws.com"
    return endpoint["hostname"]


class _Tables:
    """Region -> account tables, each stored once and named by its index."""

    def __init__(self) -> None:
        self.tables: list[dict[str, str]] = []

    def ref(self, table: dict[str, str]) -> str:
        table = dict(sorted(table.items()))
        if table not in self.tables:
            self.tables.append(table)
        return f"r{self.tables.index(table)}"


def _trim(entry: dict, tables: _Tables) -> dict:
    """One version's (or one Python version's) entry, with its registries by reference."""
    out: dict = {}
    for key, value in entry.items():
        if key == "registries":
            out["registries"] = tables.ref(value)
        elif key in KEEP:
            out[key] = value
        elif isinstance(value, dict):  # a nested level: base framework or Python version
            out[key] = _trim(value, tables)
    return out


def main() -> int:
    tables = _Tables()
    frameworks = {}
    for name in FRAMEWORKS:
        config = image_uris.config_for_framework(name)
        scope = config.get("training", config)
        frameworks[name] = {
            key: scope[key] for key in ("processors", "version_aliases") if key in scope
        }
        frameworks[name]["versions"] = {
            version: _trim(entry, tables) for version, entry in scope["versions"].items()
        }
    regions = sorted({region for table in tables.tables for region in table})
    document = {
        "source": {
            "package": "sagemaker",
            "version": sagemaker.__version__,
            "files": [f"sagemaker/image_uri_config/{name}.json" for name in FRAMEWORKS],
            "scope": "training",
            "generated_by": "tools/gen_sdk_catalogs.py",
        },
        "hosts": {region: _host(region) for region in regions},
        "registries": {f"r{i}": table for i, table in enumerate(tables.tables)},
        "frameworks": frameworks,
    }
    OUT.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{OUT.name}: sagemaker {sagemaker.__version__}, {len(regions)} regions")
    launched = json.loads(
        (Path(sagemaker.__file__).parent / "jumpstart" / "region_config.json").read_text(
            encoding="utf-8"
        )
    )
    buckets = {region: info["content_bucket"] for region, info in sorted(launched.items())}
    REGIONS_OUT.write_text(
        json.dumps(
            {
                "source": {
                    "package": "sagemaker",
                    "version": sagemaker.__version__,
                    "files": ["sagemaker/jumpstart/region_config.json"],
                    "generated_by": "tools/gen_sdk_catalogs.py",
                },
                "content_buckets": buckets,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"{REGIONS_OUT.name}: {len(buckets)} JumpStart regions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
