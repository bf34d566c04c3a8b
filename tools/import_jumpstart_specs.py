"""Copy JumpStart model-spec JSON documents into compiler/catalog/jumpstart/.

The specs are the SageMaker Python SDK's own unit-test data: whole documents as JumpStart
publishes them per model and version, held in `PROTOTYPICAL_MODEL_SPECS_DICT` of
tests/unit/sagemaker/jumpstart/constants.py. The file is Python, so it is parsed with
`ast` and the dict read with `ast.literal_eval` (nothing in it is executed). Each spec is
written unchanged as `<model_id>.json`, and `sources.json` records where each came from
(repository, path, tag, commit, the spec's own version), which the catalog shows.

Run it against a checkout of the SDK's repository at the tag that matches the SDK the
parity tests pin (.ci/sdk-requirements.txt):

    git clone --branch v2.257.6 https://github.com/aws/sagemaker-python-sdk sdk
    python tools/import_jumpstart_specs.py sdk
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "compiler" / "catalog" / "jumpstart"
CONSTANTS = "tests/unit/sagemaker/jumpstart/constants.py"
DICT_NAME = "PROTOTYPICAL_MODEL_SPECS_DICT"
REPOSITORY = "aws/sagemaker-python-sdk"
# A BERT text classifier (sentence pairs) and two image classifiers, one per framework.
MODELS = (
    "huggingface-spc-bert-base-cased",
    "pytorch-ic-mobilenet-v2",
    "tensorflow-ic-bit-m-r101x1-ilsvrc2012-classification-1",
)


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _read_specs(source: str) -> dict:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == DICT_NAME for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{DICT_NAME} not found in {CONSTANTS}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a git checkout of the SDK repository")
    parser.add_argument("--ref", default="HEAD", help="the commit or tag to read (git show)")
    args = parser.parse_args()
    ref = args.ref
    commit = _git(args.checkout, "rev-parse", f"{ref}^{{commit}}")
    tag = _git(args.checkout, "describe", "--tags", "--exact-match", commit) or ref
    specs = _read_specs(_git(args.checkout, "show", f"{commit}:{CONSTANTS}"))
    OUT.mkdir(parents=True, exist_ok=True)
    sources = {}
    for model_id in MODELS:
        spec = specs[model_id]
        path = OUT / f"{model_id}.json"
        path.write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        sources[model_id] = {
            "file": path.name,
            "model_version": spec["version"],
            "source": f"github.com/{REPOSITORY}@{tag} ({commit[:12]}) {CONSTANTS} {DICT_NAME}",
        }
        print(f"{path.relative_to(OUT.parent.parent.parent)}: {model_id} {spec['version']}")
    (OUT / "sources.json").write_text(
        json.dumps({"version": tag, "specs": sources}, indent=1, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
