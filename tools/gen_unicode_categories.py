"""Write compiler/catalog/unicode_categories.json: the code point ranges of each one-letter
Unicode category, as regular-expression class text.

botocore's service model writes some patterns with Java's \\p{L}-style classes, which
Python's `re` lacks; compiler/check/_botocore_check.py spells them as ranges. Scanning all
1.1 million code points for them took 80 ms of every process's start, so they are made
here once, from this Python's `unicodedata`, whose Unicode version is recorded; the
compiler uses the file only when its own Python has the same version, and scans otherwise.

    python tools/gen_unicode_categories.py
"""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

from trainspec.compiler.check._botocore_check import scan_category_ranges

OUT = Path(__file__).resolve().parents[1] / "compiler" / "catalog" / "unicode_categories.json"


def main() -> None:
    data = {
        "source": f"Python {sys.version.split()[0]} unicodedata",
        "unidata_version": unicodedata.unidata_version,
        "categories": scan_category_ranges(),
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT} (Unicode {unicodedata.unidata_version})")


if __name__ == "__main__":
    main()
