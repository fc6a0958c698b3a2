"""The long bad-input run: tests/test_fuzz.py with every example count multiplied.

    python benchmarks/fuzz_long.py        # scale 10: 12,000 valid queries through both encoders
    python benchmarks/fuzz_long.py --scale 20 --out /tmp/fuzz.json

It runs the fuzz tests with ``FUZZ_SCALE`` set, against the nodes ``ES_URL`` /
``OPENSEARCH_URL`` name or, without them, nodes the test suite starts itself. The tests count
what went through each stage (generated, rejected with an error, encoded, distinct encoded,
searched and reranked per engine) into ``FUZZ_COUNTS_FILE``; this script writes those counts
with the scale, date, duration, machine and pytest exit code to ``--out``
(``benchmarks/results/fuzz.json``), and prints the headline numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """What the run ran on: CPU model and count, memory, OS, Python, load before the run
    (the machine may be shared: ``main`` adds the load after it)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line]
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = next((line.split()[1] for line in meminfo.splitlines() if "MemTotal" in line), None)
    return {
        "cpu": models[0] if models else platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(total) / 2**20, 1) if total else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def run(scale: float, pytest_args: list[str]) -> tuple[int, float, dict[str, Any]]:
    """pytest's exit code, the seconds it took and the counts the tests wrote."""
    with tempfile.TemporaryDirectory() as folder:
        counts_file = Path(folder) / "counts.json"
        env = dict(os.environ, FUZZ_SCALE=str(scale), FUZZ_COUNTS_FILE=str(counts_file))
        started = time.perf_counter()
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider",
             "-W", "ignore::hypothesis.errors.HypothesisWarning", *pytest_args],
            cwd=ROOT,
            env=env,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        written = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    return code, seconds, written.get("counts", {})


def headline(counts: dict[str, Any]) -> list[str]:
    """The numbers RELIABILITY.md quotes, one line each."""
    docs, queries = counts.get("documents", {}), counts.get("queries", {})
    rec, enc = docs.get("records", {}), queries.get("encoders", {})
    bad, rerank = queries.get("invalid", {}), queries.get("rerank", {})
    lines = [
        f"records: {rec.get('generated', 0)} generated, {rec.get('rejected_with_reason', 0)}"
        f" rejected with a reason, {rec.get('encoded', 0)} encoded"
        f" ({rec.get('distinct_encoded', 0)} distinct)",
        f"valid queries through SPLADE and ColBERT: {enc.get('encoded', 0)}"
        f" ({enc.get('distinct_encoded', 0)} distinct)",
        f"invalid queries refused by name: {bad.get('rejected_with_error', 0)}"
        f" of {bad.get('generated', 0)}",
        f"rerank: {rerank.get('answered', 0)} answered of {rerank.get('calls', 0)} calls",
    ]
    for engine, stage in sorted(docs.get("bulk", {}).items()):
        lines.append(f"bulk {engine}: {stage.get('indexed', 0)} of {stage.get('generated', 0)}")
    for engine, stage in sorted(queries.get("search", {}).items()):
        lines.append(
            f"search {engine}: {stage.get('search_answered', 0)} SPLADE and"
            f" {stage.get('bm25_answered', 0)} BM25 answers of {stage.get('generated_valid', 0)}"
            " valid queries"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0, help="example-count multiplier")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json", help="report"
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args()
    started_at = datetime.datetime.now(datetime.UTC)
    host = machine()
    code, seconds, counts = run(args.scale, args.pytest_args)
    host["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = {
        "command": " ".join(["python", "benchmarks/fuzz_long.py", *sys.argv[1:]]),
        "scale": args.scale,
        "date": started_at.isoformat(timespec="seconds"),
        "duration_s": round(seconds, 1),
        "machine": host,
        "pytest_exit_code": code,
        "counts": counts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nscale {args.scale}: pytest exit {code} in {seconds / 60:.1f} min -> {args.out}")
    print("\n".join(headline(counts)))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
