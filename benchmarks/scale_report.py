"""Tables and plots of the scale benchmark (``scale_curve.py``): pure apart from writing.

The pruning target of issue 16: at the largest size, recall@100 >= 0.99 against the exact
query, SciFact nDCG@10 within 0.003 of exact, and p50 <= 0.5x the exact query's p50.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from splade_es.search.pruning import AUTO_PRUNING

TARGET_RECALL = 0.99
TARGET_NDCG_GAP = 0.003
TARGET_SPEED = 0.5


def meets_target(form: str, largest: Mapping[str, Any], scifact: Mapping[str, Any]) -> bool:
    """Whether ``form`` meets the pruning target at the largest size."""
    row, exact = largest["forms"][form], largest["forms"]["exact"]
    gap = scifact["forms"]["exact"]["ndcg@10"] - scifact["forms"][form]["ndcg@10"]
    return (
        row["recall@100"] >= TARGET_RECALL
        and gap <= TARGET_NDCG_GAP
        and row["p50_ms"] <= TARGET_SPEED * exact["p50_ms"]
    )


def cost_table(sizes: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| corpus | documents | SPLADE p50 / p99 ms | BM25 p50 / p99 ms | SPLADE / BM25 p50 "
        "| SPLADE index MB | BM25 index MB | SPLADE load docs/s | BM25 load docs/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        exact, bm25 = size["forms"]["exact"], size["forms"]["bm25"]
        lines.append(
            f"| {size['label']} | {size['documents']:,} "
            f"| {exact['p50_ms']:.1f} / {exact['p99_ms']:.1f} "
            f"| {bm25['p50_ms']:.1f} / {bm25['p99_ms']:.1f} "
            f"| {exact['p50_ms'] / bm25['p50_ms']:.2f}x "
            f"| {size['index']['splade']['bytes'] / 2**20:.0f} "
            f"| {size['index']['bm25']['bytes'] / 2**20:.0f} "
            f"| {size['docs_per_s']['splade']:.0f} | {size['docs_per_s']['bm25']:.0f} |"
        )
    return "\n".join(lines)


def pruning_table(sizes: Sequence[Mapping[str, Any]]) -> str:
    """One row per query form: SciFact nDCG@10, then recall@100 and p50 (x exact) per size."""
    scifact = sizes[0]
    synthetic = sizes[1:]
    head = "| query form | SciFact nDCG@10 |" + "".join(
        f" {s['label']}: R@100 | p50 ms (x exact) |" for s in synthetic
    )
    lines = [head, "|---|---:|" + "---:|---:|" * len(synthetic)]
    for form in scifact["forms"]:
        if form == "bm25":
            continue
        cells = [f"| {form} | {scifact['forms'][form]['ndcg@10']:.4f} |"]
        for size in synthetic:
            row, exact = size["forms"][form], size["forms"]["exact"]
            ratio = row["p50_ms"] / exact["p50_ms"]
            cells.append(f" {row['recall@100']:.4f} | {row['p50_ms']:.1f} ({ratio:.2f}x) |")
        lines.append("".join(cells))
    return "\n".join(lines)


def target_lines(sizes: Sequence[Mapping[str, Any]]) -> list[str]:
    scifact, largest = sizes[0], sizes[-1]
    forms = [f for f in largest["forms"] if f not in ("bm25", "exact")]
    met = [f for f in forms if meets_target(f, largest, scifact)]
    label = f"{largest['documents']:,} documents"
    if not met:
        return [f"No query form meets the pruning target at {label}."]
    return [f"Forms meeting the pruning target at {label}: " + ", ".join(f"`{f}`" for f in met)]


def write_report(
    results: Mapping[str, Any], real: Any, stats: Any, sizes: Sequence[int], out: Path
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    machine = results["machine"]
    text = [
        "# Scale: the cost curve and query pruning",
        "",
        f"One Elasticsearch node (heap {machine['heap']}), {machine['cpus']} CPUs "
        f"({machine['cpu']}), model {machine['model']}; 1 shard, 0 replicas; client-side "
        "latency of one sequential client, every form of a query run back to back (the first "
        "form rotated per query) after an untimed pass of every form.",
        "",
        cost_table(results["sizes"]),
        "",
        pruning_table(results["sizes"]),
        "",
        *target_lines(results["sizes"]),
        "",
    ]
    (out / "scale.md").write_text("\n".join(text))
    plot_latency(results["sizes"][1:], out / "scale_latency.png")
    plot_distributions(real, stats, max(sizes), out / "scale_distributions.png")


def plot_latency(sizes: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    documents = [s["documents"] for s in sizes]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    shown = ("exact", "bm25", "es-prune", "weight=0.3", AUTO_PRUNING.name, "top_k=20")
    for form in dict.fromkeys(shown):
        if form in sizes[0]["forms"]:
            axis.plot(documents, [s["forms"][form]["p50_ms"] for s in sizes], "o-", label=form)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("documents")
    axis.set_ylabel("p50 latency (ms)")
    axis.set_title("Query latency against corpus size (one node, one shard)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_distributions(real: Any, stats: Any, size: int, path: Path) -> None:
    """Terms per document, and document frequency by rank (as a share of N), real vs
    generated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    real_lengths = real.documents.lengths()
    bins = np.linspace(0, max(real_lengths.max(), stats[f"lengths_{size}"].max()) + 1, 50)
    left.hist(real_lengths, bins=bins, density=True, alpha=0.6, label="real (SciFact)")
    left.hist(stats[f"lengths_{size}"], bins=bins, density=True, alpha=0.6, label=f"{size:,}")
    left.set_xlabel("terms per document")
    left.set_ylabel("share of documents")
    left.legend()
    real_df = np.sort(real.documents.document_frequencies(len(stats[f"df_{size}"])))[::-1]
    generated = np.sort(stats[f"df_{size}"])[::-1]
    right.loglog(np.arange(1, len(real_df) + 1), real_df / len(real.documents), label="real")
    right.loglog(np.arange(1, len(generated) + 1), generated / size, label=f"{size:,}")
    right.set_xlabel("term rank")
    right.set_ylabel("document frequency / N")
    right.legend()
    figure.suptitle("Real and generated SPLADE document vectors")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
