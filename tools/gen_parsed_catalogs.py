"""Write compiler/catalog/*.parsed.json: each packaged YAML file of PARSED_TWINS
(instances, fields, hyperparameters) parsed, with the SHA-256 of the YAML text it came
from.

Parsing these files took ~25 ms of every `trainspec validate` and `compile`; the compiler
reads a twin instead when its hash matches the YAML file, and the YAML file otherwise
(tests/compiler/test_catalog.py fails until the twin is remade). Rerun after editing any
of them.

    python tools/gen_parsed_catalogs.py
"""

from __future__ import annotations

import json
from pathlib import Path

from trainspec.compiler.catalog._yaml_data import PARSED_TWINS, parsed_twin

CATALOG = Path(__file__).resolve().parents[1] / "compiler" / "catalog"


def main() -> None:
    for source, twin in PARSED_TWINS.items():
        data = parsed_twin(CATALOG / source)
        text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"  # in the YAML's order
        (CATALOG / twin).write_text(text, encoding="utf-8")
        print(f"wrote {CATALOG / twin} from {source}")


if __name__ == "__main__":
    main()
