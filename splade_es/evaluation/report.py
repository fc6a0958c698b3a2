"""Evaluation reports: ``report.json``, ``report.md`` and ``report.png``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRICS = ("ndcg@10", "recall@100", "mrr@10", "latency_ms_p50", "latency_ms_p95", "num_queries")


def markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown page (what was evaluated, stage table, parity, index facts)."""
    lines = [
        f"# {report['dataset']} ({report['split']}): {report['engine']} "
        f"{report['engine_version']}, {report['mapping_type']}",
        "",
        f"Model `{report['model']}`; index `{report['index']}` with {report['index_docs']} "
        f"documents, {report['index_size_bytes'] / 1e6:.1f} MB.",
        "",
        *_data_lines(report.get("data")),
        *_idf_lines(report.get("idf_table")),
        "| stage | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for stage, values in report["stages"].items():
        cells = [_cell(values.get(metric)) for metric in METRICS]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += _stage_notes(report["stages"])
    lines += _breakdown_lines(report["stages"])
    parity = report.get("parity")
    if parity:
        lines += [
            "",
            "Parity with the exact in-memory ranking (same model); `identical` compares the "
            "top 10 as sets, `same_order` in order (only exact ties may swap):",
            "",
            "| | value |",
            "|---|---|",
        ]
        lines += [f"| {key} | {_cell(value)} |" for key, value in parity.items()]
    return "\n".join(lines) + "\n"


def _data_lines(data: Mapping[str, Any] | None) -> list[str]:
    """What was evaluated and what was left out, as paragraphs (none for an older report)."""
    if not data:
        return []
    subset = (
        f" (the first {data['max_queries']} by --max-queries)" if data.get("max_queries") else ""
    )
    lines = [
        f"{data['queries_evaluated']} judged queries evaluated{subset}; "
        f"{data['queries_without_positive']} judged queries without a positive judgement "
        f"left out; {data['corpus_records_dropped']} corpus records dropped by validation.",
        "",
    ]
    if data.get("scores_inflated_by_sample"):
        lines += [f"**Scores are inflated:** {data['corpus_note']}", ""]
    return lines


def _idf_lines(table: Mapping[str, Any] | None) -> list[str]:
    """The IDF table the ``splade-idf`` stages used (none when no such stage ran)."""
    if not table:
        return []
    return [
        f"`splade-idf` queries: the query's own tokens weighted by IDF over {table['terms']} "
        f"terms of {table['documents']} documents (table loaded or computed in "
        f"{table['load_seconds']} s, outside the latencies).",
        "",
    ]


def _stage_notes(stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A sentence per stage whose judged queries found nothing (they score 0)."""
    notes = [
        f"- {stage}: {values['queries_without_hits']} of {values['num_queries']} judged "
        f"queries returned no hits ({values.get('queries_failed', 0)} failed) and score 0."
        for stage, values in stages.items()
        if values.get("queries_without_hits")
    ]
    return ["", *notes] if notes else []


PARTS = (
    "splade_query_encode",
    "first_stage",
    "colbert_query_encode",
    "fetch",
    "decode",
    "scoring",
)


def _breakdown_lines(stages: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where each stage's time goes, p50 / p95 in ms (none for an older report)."""
    rows = {
        stage: values["breakdown_ms"]
        for stage, values in stages.items()
        if "breakdown_ms" in values
    }
    if not rows:
        return []
    lines = [
        "",
        "Where the time goes, p50 / p95 ms per query (`first_stage`: the engine's answer as "
        "the client gets it, with the stored embeddings for a `+colbert` stage; `fetch`: a "
        "second request for embeddings the hits lacked; `scoring`: MaxSim):",
        "",
        "| stage | " + " | ".join(PARTS) + " |",
        "|---|" + "---|" * len(PARTS),
    ]
    for stage, parts in rows.items():
        cells = [
            f"{parts[name]['p50']:.2f} / {parts[name]['p95']:.2f}" if name in parts else ""
            for name in PARTS
        ]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return lines


def plot(report: Mapping[str, Any], path: Path) -> None:
    """Bar chart of nDCG@10 and Recall@100 by stage, and median/p95 latency by stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(report["stages"])
    values = report["stages"]
    figure, (quality, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    positions = range(len(stages))
    for offset, metric, colour in (
        (-width / 2, "ndcg@10", "#2f6db5"),
        (width / 2, "recall@100", "#e08a2c"),
    ):
        bars = quality.bar(
            [p + offset for p in positions],
            [values[s][metric] for s in stages],
            width,
            label=metric,
            color=colour,
        )
        quality.bar_label(bars, fmt="%.3f", fontsize=8)
    quality.set_xticks(list(positions), stages)
    quality.set_ylim(0, 1.18)  # room for the legend above the bars
    quality.set_title("Quality by stage")
    quality.legend(loc="upper left", ncol=2)
    for offset, metric, colour in (
        (-width / 2, "latency_ms_p50", "#5b9b5b"),
        (width / 2, "latency_ms_p95", "#b55b5b"),
    ):
        bars = latency.bar(
            [p + offset for p in positions],
            [values[s][metric] for s in stages],
            width,
            label=metric.replace("latency_ms_", ""),
            color=colour,
        )
        latency.bar_label(bars, fmt="%.1f", fontsize=8)
    latency.set_xticks(list(positions), stages)
    latency.set_ylabel("ms per query (client side)")
    latency.set_title("Latency by stage")
    latency.legend()
    models = f"SPLADE {_short(report['model'])}"
    if report.get("colbert_model"):
        models += f", ColBERT {_short(report['colbert_model'])}"
    figure.suptitle(
        f"{report['dataset']} {report['split']} ({report['index_docs']} docs) - "
        f"{report['engine']} {report['engine_version']}\n{models}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(report: Mapping[str, Any], out: Path) -> list[Path]:
    """Write report.json, report.md and report.png into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "report.png"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n")
    paths[1].write_text(markdown(report))
    plot(report, paths[2])
    return paths


def _short(model: str, width: int = 45) -> str:
    """A model name or path cut to its end, for titles."""
    return model if len(model) <= width else "..." + model[-(width - 3) :]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 100 else f"{value:.1f}"
    return str(value)
