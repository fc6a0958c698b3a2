"""The λ trade-off table and plot (pure rendering)."""

from __future__ import annotations

import json

from splade_es.training import sweep


def report(terms: float, size: int, p50: float, ndcg: float) -> dict:
    stage = {"ndcg@10": ndcg, "recall@100": 0.9, "latency_ms_p50": p50, "latency_ms_p95": p50 * 2}
    return {
        "indexing": {"avg_terms_per_doc": terms},
        "index_size_bytes": size,
        "stages": {"splade": stage},
    }


def test_rows_table_and_plot(tmp_path):
    rows = [
        sweep.sweep_row("start", None, report(245.0, 41_600_000, 30.0, 0.64), 0.0),
        sweep.sweep_row("λ_d=0.001", 1e-3, report(140.2, 30_100_000, 22.5, 0.66), 11.3),
        sweep.sweep_row("λ_d=0.1", 0.1, report(59.5, 18_000_000, 15.0, 0.63), 11.1),
    ]
    assert rows[1]["index_mb"] == 30.1 and rows[1]["lambda_document"] == 1e-3
    table = sweep.markdown(rows, "caption")
    assert "| λ_d=0.001 | 0.001 | 140.2 | 30.1 | 22.5 | 45.0 | 0.6600 | 0.9000 | 11.3 |" in table
    assert "| start | - | 245.0 |" in table
    paths = sweep.write(rows, tmp_path, "caption")
    assert [p.name for p in paths] == ["sweep.json", "sweep.md", "sweep.png"]
    assert json.loads(paths[0].read_text())["rows"][2]["ndcg@10"] == 0.63
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_of_reused_indices_are_listed_but_not_plotted(tmp_path):
    reused = report(0.0, 1_000_000, 20.0, 0.5)
    reused["indexing"] = {"reused": True}
    rows = [sweep.sweep_row("λ_d=0.01", 0.01, reused, 3.0)]
    assert "| λ_d=0.01 | 0.01 | - |" in sweep.markdown(rows, "c")
    paths = sweep.write(rows, tmp_path, "c")
    assert paths[2].is_file()
