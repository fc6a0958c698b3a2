"""The query-speed report of ``speed_compare.sh``: before and now, per engine, the latency of
each stage, where the time goes, the five ratio targets of issue 14 (met or not) and load
throughput; writes ``speed.json``, ``speed.md`` and ``speed.png`` into ``--out``.

Usage:
    python benchmarks/speed_report.py --before REV --out benchmarks/results/speed
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from splade_es.evaluation.report import PARTS

ENGINES = ("elasticsearch", "opensearch")


def load_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SystemExit(f"{path} is missing: run benchmarks/speed_compare.sh first")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def p50(report: dict[str, Any], stage: str, part: str | None = None) -> float:
    values = report["stages"][stage]
    if part is None:
        return float(values["latency_ms_p50"])
    return float(values.get("breakdown_ms", {}).get(part, {}).get("p50", 0.0))


def targets(now: dict[str, Any], first: str, load_ratio: float, load_ok: bool) -> dict[str, Any]:
    """The issue's ratios for one engine with first stage ``first`` (``splade`` or
    ``splade-idf``): value, limit, met."""
    bm25, splade = p50(now, "bm25"), p50(now, first)
    reranked = f"{first}+colbert"
    fetch = max(0.0, p50(now, reranked, "first_stage") - p50(now, first, "first_stage"))
    rerank = fetch + sum(p50(now, reranked, part) for part in ("fetch", "decode", "scoring"))
    encoders = p50(now, first, "splade_query_encode") + p50(now, reranked, "colbert_query_encode")
    ndcg = float(now["stages"][reranked]["ndcg@10"])
    rows = {
        f"1. {reranked} p50 / bm25 p50 (nDCG@10 {ndcg:.4f}, needs >= 0.705)": (
            p50(now, reranked) / bm25,
            3.0,
            ndcg >= 0.705,
        ),
        f"2. {first} p50 / bm25 p50": (splade / bm25, 1.5, True),
        f"3. rerank top 100 (embeddings {fetch:.1f} ms + decode + score) / {first} p50": (
            rerank / splade,
            1.0,
            True,
        ),
        "4. both query encoders / bm25 p50": (encoders / bm25, 1.0, True),
        "5. load throughput now / before (zero errors, zero differing answers)": (
            load_ratio,
            4.0,
            load_ok,
        ),
    }
    out = {}
    for name, (value, limit, extra) in rows.items():
        met = (value >= limit if name.startswith("5.") else value <= limit) and extra
        out[name] = {"value": round(value, 3), "limit": limit, "met": met}
    return out


def load_row(out: Path, when: str, engine: str) -> dict[str, Any]:
    found = sorted((out / f"{when}-load").glob(f"{engine}-*.json"))
    if not found:
        raise SystemExit(f"no {when}-load result for {engine} in {out}")
    result = load_json(found[-1])
    summary = result["summary"]
    return {
        "throughput": summary["throughput"],
        "p50_ms": summary["latency"]["p50"],
        "p95_ms": summary["latency"]["p95"],
        "errors": summary["errors"],
        "differing": result["answers_differing_from_single_threaded"],
    }


def engine_section(engine: str, before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Stage latencies before/now and the breakdown now, as markdown."""
    lines = [
        f"### {engine} {now['engine_version']}",
        "",
        "| stage | nDCG@10 before | nDCG@10 now | p50 ms before | p50 ms now | p95 ms now |",
        "|---|---|---|---|---|---|",
    ]
    for stage, values in now["stages"].items():
        old = before["stages"].get(stage, {})
        old_ndcg = f"{old['ndcg@10']:.4f}" if old else ""
        old_p50 = f"{old['latency_ms_p50']:.1f}" if old else ""
        lines.append(
            f"| {stage} | {old_ndcg} | {values['ndcg@10']:.4f} | {old_p50} | "
            f"{values['latency_ms_p50']:.1f} | {values['latency_ms_p95']:.1f} |"
        )
    lines += ["", "| stage (now), p50 / p95 ms | " + " | ".join(PARTS) + " |"]
    lines.append("|---|" + "---|" * len(PARTS))
    for stage, values in now["stages"].items():
        parts = values.get("breakdown_ms", {})
        cells = [
            f"{parts[p]['p50']:.2f} / {parts[p]['p95']:.2f}" if p in parts else "" for p in PARTS
        ]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    rerank = before["stages"].get("splade+colbert", {})
    if rerank:
        lines += [
            "",
            f"Before, `splade+colbert` reported ColBERT query encoding "
            f"{rerank['colbert_query_encode_ms_p50']:.1f} ms and fetch + decode + MaxSim "
            f"{rerank['rerank_ms_p50']:.1f} ms p50 (with the embeddings in the first stage's "
            "hits, no fetch; it did not time the other parts apart).",
        ]
    return [*lines, ""]


def target_lines(engine: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"| {engine} | target | value | limit | met |", "|---|---|---|---|---|"]
    for name, row in rows.items():
        mark = "**met**" if row["met"] else "missed"
        lines.append(f"| | {name} | {row['value']:.2f} | {row['limit']:g} | {mark} |")
    return [*lines, ""]


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for axis, engine in zip(axes[:2], ENGINES, strict=True):
        now, before = result[engine]["now"], result[engine]["before"]
        stages = list(now)
        xs = range(len(stages))
        axis.bar([x - 0.2 for x in xs], [before.get(s, 0) for s in stages], 0.4, label="before")
        axis.bar([x + 0.2 for x in xs], [now[s] for s in stages], 0.4, label="now")
        axis.set_xticks(list(xs), stages, rotation=20, fontsize=7)
        axis.set_ylabel("p50 latency (ms)")
        axis.set_title(engine)
        axis.legend()
    load = [result[e]["load"] for e in ENGINES]
    axes[2].bar([0, 2], [row["before"]["throughput"] for row in load], 0.8, label="before")
    axes[2].bar([1, 3], [row["now"]["throughput"] for row in load], 0.8, label="now")
    axes[2].set_xticks([0.5, 2.5], list(ENGINES))
    axes[2].set_ylabel("requests/s (8 clients)")
    axes[2].set_title("load: search + rerank")
    axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="The revision measured as before.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/speed"))
    args = parser.parse_args()
    result: dict[str, Any] = {"before_revision": args.before}
    lines = [f"Before: the code of `{args.before}`; now: the current code; back to back.", ""]
    for engine in ENGINES:
        before = load_json(args.out / f"before-{engine}" / "report.json")
        now = load_json(args.out / f"now-{engine}" / "report.json")
        load = {when: load_row(args.out, when, engine) for when in ("before", "now")}
        ratio = load["now"]["throughput"] / load["before"]["throughput"]
        clean = load["now"]["errors"] == 0 and load["now"]["differing"] == 0
        rows = {first: targets(now, first, ratio, clean) for first in ("splade", "splade-idf")}
        result[engine] = {
            "before": {s: v["latency_ms_p50"] for s, v in before["stages"].items()},
            "now": {s: v["latency_ms_p50"] for s, v in now["stages"].items()},
            "load": load,
            "targets": rows,
        }
        lines += engine_section(engine, before, now)
        lines += [
            f"Load, 8 clients x 60 s: {load['before']['throughput']:.2f} -> "
            f"{load['now']['throughput']:.2f} requests/s ({ratio:.2f}x), p50 "
            f"{load['before']['p50_ms']:.0f} -> {load['now']['p50_ms']:.0f} ms, errors "
            f"{load['now']['errors']}, answers differing from single-threaded ones "
            f"{load['now']['differing']}.",
            "",
        ]
        for first, table in rows.items():
            lines += target_lines(f"{engine}, first stage `{first}`", table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "speed.md").write_text("\n".join(lines))
    plot(result, args.out / "speed.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
