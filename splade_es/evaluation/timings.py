"""Per-stage timings of an evaluation: each query's timed parts, and their percentiles."""

from __future__ import annotations

from typing import Any

from splade_es.evaluation.metrics import percentiles_ms
from splade_es.search.pipeline import Ranking


def record(parts: dict[str, list[float]], ranking: Ranking, mode: str) -> None:
    """Append one query's timed parts (milliseconds) to ``parts``."""
    measured = {"first_stage": ranking.search_ms - ranking.query_encode_ms}
    if mode == "splade":
        measured["splade_query_encode"] = ranking.query_encode_ms
    stats = ranking.rerank
    if stats is not None:
        measured.update(
            colbert_query_encode=stats.encode_ms,
            fetch=stats.fetch_ms,
            decode=stats.decode_ms,
            scoring=stats.maxsim_ms,
            rerank=stats.fetch_ms + stats.decode_ms + stats.maxsim_ms,
        )
    for name, value in measured.items():
        parts.setdefault(name, []).append(value)


def summarise(timings: dict[str, Any]) -> dict[str, Any]:
    """The timed parts' p50/p95 (``breakdown_ms``), and the reranking summary fields."""
    parts: dict[str, list[float]] = timings.get("parts", {})
    breakdown = {
        name: {k.removeprefix("latency_ms_"): round(v, 3) for k, v in percentiles_ms(vs).items()}
        for name, vs in parts.items()
    }
    out: dict[str, Any] = {"breakdown_ms": breakdown} if breakdown else {}
    if "rerank_k" in timings:
        out.update(
            rerank_k=timings["rerank_k"],
            colbert_query_encode_ms_p50=breakdown["colbert_query_encode"]["p50"],
            rerank_ms_p50=breakdown["rerank"]["p50"],
            rerank_ms_p95=breakdown["rerank"]["p95"],
        )
    return out
