"""The effect of λ_d, measured: one SPLADE model trained per λ_d, each indexed in the real node
and evaluated there. Rows: avg terms per document, index size, query latency, nDCG@10.

Rendering (``sweep.json``, ``sweep.md``, ``sweep.png``) is pure; :func:`sweep_row` reads one
evaluation report.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    ("lambda_document", "λ_d"),
    ("avg_terms_per_doc", "avg terms/doc"),
    ("index_mb", "index MB"),
    ("latency_ms_p50", "p50 ms"),
    ("latency_ms_p95", "p95 ms"),
    ("ndcg@10", "nDCG@10"),
    ("recall@100", "R@100"),
    ("train_seconds", "train s"),
)


def sweep_row(
    label: str,
    lambda_document: float | None,
    report: Mapping[str, Any],
    train_seconds: float | None,
) -> dict[str, Any]:
    """One table row from an evaluation report of the ``splade`` stage."""
    stage = report["stages"]["splade"]
    return {
        "model": label,
        "lambda_document": lambda_document,
        "avg_terms_per_doc": report["indexing"].get("avg_terms_per_doc"),
        "index_mb": round(report["index_size_bytes"] / 1e6, 1),
        "latency_ms_p50": stage["latency_ms_p50"],
        "latency_ms_p95": stage["latency_ms_p95"],
        "ndcg@10": stage["ndcg@10"],
        "recall@100": stage["recall@100"],
        "train_seconds": None if train_seconds is None else round(train_seconds, 1),
    }


def markdown(rows: Sequence[Mapping[str, Any]], caption: str) -> str:
    lines = [caption, "", "| model | " + " | ".join(h for _, h in COLUMNS) + " |"]
    lines.append("|---|" + "---|" * len(COLUMNS))
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key)
            if value is None:
                cells.append("-")
            elif key == "lambda_document":
                cells.append(f"{value:g}")
            elif isinstance(value, float):
                cells.append(f"{value:.4f}" if key in ("ndcg@10", "recall@100") else f"{value:.1f}")
            else:
                cells.append(str(value))
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """nDCG@10 against avg terms per document (each point labelled with λ_d), and latency.

    Rows without a term count (their index was reused, so nothing was encoded) are left out
    of the plot; the table still lists them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (quality, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in rows:
        if row.get("avg_terms_per_doc") is None:
            continue
        trained = row.get("lambda_document") is not None
        label = f"λ_d={row['lambda_document']:g}" if trained else row["model"]
        marker, colour = ("o", "#2f6db5") if trained else ("s", "#888888")
        for axis, key in ((quality, "ndcg@10"), (latency, "latency_ms_p50")):
            point = (row["avg_terms_per_doc"], row[key])
            axis.scatter(*point, marker=marker, color=colour, s=50)
            axis.annotate(label, point, fontsize=8, xytext=(5, 4), textcoords="offset points")
    quality.set_xlabel("average non-zero terms per document")
    quality.set_ylabel("nDCG@10 (real node)")
    quality.set_title("Quality against document sparsity")
    latency.set_xlabel("average non-zero terms per document")
    latency.set_ylabel("p50 ms per query (query encoding included)")
    latency.set_title("Latency against document sparsity")
    for axis in (quality, latency):
        axis.grid(alpha=0.3)
        axis.margins(x=0.2, y=0.12)  # room for the point labels
    figure.suptitle(textwrap.fill(title, 110), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write(rows: Sequence[Mapping[str, Any]], out: Path, caption: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "sweep.json", out / "sweep.md", out / "sweep.png"]
    paths[0].write_text(json.dumps({"caption": caption, "rows": list(rows)}, indent=2) + "\n")
    paths[1].write_text(markdown(rows, caption))
    plot(rows, paths[2], caption)
    return paths
