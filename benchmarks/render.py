"""Copy the latest result tables (benchmarks/results/*.md) into BENCHMARKS.md between markers.

python benchmarks/render.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {
    "scifact": "scifact-eval.md",
    "splade": "splade.md",
    "colbert": "colbert.md",
    "load": "load/elasticsearch-8x60s.md",
    "load-opensearch": "load/opensearch-8x60s.md",
}


def main() -> None:
    page = ROOT / "BENCHMARKS.md"
    text = page.read_text()
    for name, source in SECTIONS.items():
        path = ROOT / "benchmarks" / "results" / source
        if not path.exists():
            continue
        body = path.read_text().strip()
        if name == "scifact":  # drop the report's own title and parity block (summarised above)
            body = body.split("\n\nParity", 1)[0]
            body = "\n".join(line for line in body.splitlines() if not line.startswith("# "))
        block = f"<!-- {name}:start -->\n{body.strip()}\n<!-- {name}:end -->"
        text = re.sub(
            rf"<!-- {name}:start -->\n.*?<!-- {name}:end -->",
            lambda _, block=block: block,
            text,
            flags=re.S,
        )
    page.write_text(text)


if __name__ == "__main__":
    main()
