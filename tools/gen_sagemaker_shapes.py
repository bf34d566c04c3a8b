"""Write compiler/catalog/sagemaker_shapes.json: the shapes of botocore's SageMaker model
that the requests trainspec lowers to can reach, with botocore's version.

Loading botocore's whole SageMaker model took ~100 ms of every `trainspec compile`; the
compiler types and checks requests against this table instead, and loads botocore's own
model only when the installed botocore is another version. Rerun after upgrading botocore
(tests/compiler/test_sagemaker_shapes.py fails until the table matches it).

    python tools/gen_sagemaker_shapes.py
"""

from __future__ import annotations

import json
from pathlib import Path

from trainspec.compiler.check._sagemaker_shapes import TABLE_FILE, table_from_botocore

OUT = Path(__file__).resolve().parents[1] / "compiler" / "catalog" / TABLE_FILE


def main() -> None:
    table = table_from_botocore()
    # Not sort_keys: a structure's members keep botocore's order (ParamValidator lists
    # a union's members in it).
    OUT.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(table['shapes'])} shapes, botocore {table['botocore_version']})")


if __name__ == "__main__":
    main()
