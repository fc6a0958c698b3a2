"""Copy the latest result tables (benchmarks/results/...) into the docs between markers.

    python benchmarks/render.py            # rewrite the blocks in BENCHMARKS.md / RELIABILITY.md
    python benchmarks/render.py --check    # exit 1 if a block differs from its results file

A block is ``<!-- name:start -->`` ... ``<!-- name:end -->``, in whichever page has it. Most
blocks are the result file verbatim; ``scifact`` drops the report's title and parity block
(summarised in prose); ``sweep`` replaces only the caption and table inside the block, keeping
the prose around them. A section whose result file is missing, or whose markers no page has,
is listed and left alone.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("BENCHMARKS.md", "RELIABILITY.md")


def report_tables(body: str, _old: str) -> str:
    """An eval report without its title and parity block."""
    body = body.split("\n\nParity", 1)[0]
    return "\n".join(line for line in body.splitlines() if not line.startswith("# ")).strip()


def caption_and_table(body: str, old: str) -> str:
    """``old`` with its first table, and the paragraph just above it (its caption), replaced
    by ``body``."""
    lines = old.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if first is None:
        raise ValueError("the block has no table to replace: put the markers around one")
    start = first
    while start > 0 and not lines[start - 1].strip():  # the blank line under the caption
        start -= 1
    while start > 0 and lines[start - 1].strip():
        start -= 1
    end = first
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join([*lines[:start], body.strip(), *lines[end:]]).strip()


def verbatim(body: str, _old: str) -> str:
    return body.strip()


@dataclass(frozen=True)
class Section:
    """A docs block: its result file (under benchmarks/results) and how it goes in."""

    source: str
    shape: Callable[[str, str], str] = verbatim


SECTIONS = {
    "scifact": Section("scifact-eval.md", report_tables),
    "sweep": Section("sweep/sweep.md", caption_and_table),
    "splade": Section("splade.md"),
    "colbert": Section("colbert.md"),
    "load": Section("load/elasticsearch-8x60s.md"),
    "load-opensearch": Section("load/opensearch-8x60s.md"),
    "memory": Section("memory/memory.md"),
    "faults": Section("faults/faults.md"),
    "fuzz": Section("fuzz.md"),
    "speed": Section("speed/speed.md"),
    "storage": Section("storage.md"),
    "scoring": Section("scoring.md"),
    "doc-only": Section("doc_only/doc_only.md"),
    "service": Section("service/service_load.md"),
    "service-bad-requests": Section("service/bad_requests.md", report_tables),
    "scale": Section("scale/scale.md", report_tables),
    "ray": Section("ray/ray_encoding.md"),
    "node-loss": Section("multinode/node_loss.md"),
    "stages": Section("stages/stages.md"),
    "muvera-tuning": Section("muvera/tuning.md", report_tables),
}


def result_text(results: Path, section: Section) -> str | None:
    """The result's markdown; for ``fuzz.md``, also the ``md`` of ``fuzz.json`` if only that
    exists. None when there is none."""
    path = results / section.source
    if path.exists():
        return path.read_text()
    if path.suffix == ".md" and path.with_suffix(".json").exists():
        data = json.loads(path.with_suffix(".json").read_text())
        text = data.get("md") or data.get("markdown") if isinstance(data, dict) else None
        return text if isinstance(text, str) else None
    return None


def render(pages: dict[str, str], results: Path) -> tuple[dict[str, str], list[str]]:
    """The pages with every block re-rendered, and notes on what was left alone."""
    notes = []
    pages = dict(pages)
    for name, section in SECTIONS.items():
        body = result_text(results, section)
        if body is None:
            notes.append(f"{name}: no {section.source} in {results}; left alone")
            continue
        pattern = re.compile(rf"<!-- {re.escape(name)}:start -->\n(.*?)<!-- {name}:end -->", re.S)
        homes = [page for page, text in pages.items() if pattern.search(text)]
        if not homes:
            notes.append(f"{name}: no <!-- {name}:start/end --> markers in {', '.join(pages)}")
            continue

        def block(match: re.Match[str], name: str = name, body: str = body) -> str:
            shaped = SECTIONS[name].shape(body, match.group(1))
            return f"<!-- {name}:start -->\n{shaped}\n<!-- {name}:end -->"

        for page in homes:
            pages[page] = pattern.sub(block, pages[page])
    return pages, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--docs", type=Path, default=ROOT, help="Folder holding the pages.")
    parser.add_argument("--check", action="store_true", help="Write nothing; exit 1 on a diff.")
    args = parser.parse_args()
    before = {p: (args.docs / p).read_text() for p in PAGES if (args.docs / p).exists()}
    after, notes = render(before, args.results)
    for note in notes:
        print(note)
    changed = [page for page in before if after[page] != before[page]]
    for page in changed:
        print(f"{page}: {'differs from' if args.check else 're-rendered from'} the results")
        if not args.check:
            (args.docs / page).write_text(after[page])
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
