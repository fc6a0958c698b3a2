"""Render the fault scenarios' figures (JSON written by tests/test_faults.py) as markdown.

Usage:
    python benchmarks/faults_report.py benchmarks/results/faults/faults.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [
    ("scenario", "scenario"),
    ("engine", "engine"),
    ("documents", "docs in"),
    ("indexed", "indexed (count = mget = content)"),
    ("dead_lettered", "dead-lettered (= the unindexable)"),
    ("bulk_requests", "bulk calls"),
    ("retried_documents", "doc re-sends"),
    ("throttled_requests", "429 answers"),
    ("smallest_chunk_docs", "smallest request"),
    ("node_down_seconds", "node down (s)"),
    ("landed_before_interruption", "landed before the stop or kill"),
    ("re_encoded_although_landed", "re-encoded although landed"),
]


def render(rows: list[dict[str, object]]) -> str:
    used = [(key, title) for key, title in COLUMNS if any(key in row for row in rows)]
    lines = [
        "| " + " | ".join(title for _, title in used) + " |",
        "|" + "|".join("---" if key in ("scenario", "engine") else "---:" for key, _ in used) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in used) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    source = Path(sys.argv[1])
    latest: dict[tuple[object, object], dict[str, object]] = {}
    for row in json.loads(source.read_text()):  # a re-run scenario replaces its earlier row
        latest[(row["scenario"], row["engine"])] = row
    table = render(list(latest.values()))
    source.with_suffix(".md").write_text(table)
    print(table)
