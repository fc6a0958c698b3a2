"""The long bad-input run: tests/test_fuzz.py with every example count multiplied.

    python benchmarks/fuzz_long.py            # scale 15: over 10,000 documents and queries
    python benchmarks/fuzz_long.py --scale 30

It starts its own Elasticsearch and OpenSearch nodes (as the test suite does), runs the fuzz
tests with ``FUZZ_SCALE`` set, and prints how many generated inputs went through each stage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=15.0, help="example-count multiplier")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        counts_file = Path(folder) / "counts.json"
        env = dict(os.environ, FUZZ_SCALE=str(args.scale), FUZZ_COUNTS_FILE=str(counts_file))
        started = time.perf_counter()
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider",
             "-W", "ignore::hypothesis.errors.HypothesisWarning", *args.pytest_args],
            cwd=ROOT,
            env=env,
        )  # fmt: skip
        minutes = (time.perf_counter() - started) / 60
        counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    documents = counts.get("records", 0) + sum(
        v for k, v in counts.items() if k.startswith("bulk_records_")
    )
    queries = (
        counts.get("queries_encoded", 0)
        + sum(v for k, v in counts.items() if k.startswith("queries_searched_"))
        + counts.get("rerank_calls", 0)
    )
    print(f"\nscale {args.scale}: pytest exit {code} in {minutes:.1f} min")
    records = counts.get("records", 0)
    print(f"generated documents: {documents} (validation + encoding: {records}; bulk into the")
    print(f"  real nodes, both engines together: {documents - records})")
    print(f"generated queries: {queries} (encoding, search + bm25 on both engines, rerank)")
    for key, value in sorted(counts.items()):
        print(f"  {key}: {value}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
