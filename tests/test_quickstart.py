"""The README's first command, end to end against the real node (a smaller corpus)."""

from __future__ import annotations

import json

import pytest
from test_cli_pipeline import cli

from splade_es.data.stdlib_corpus import stdlib_corpus


def test_stdlib_corpus_is_real_and_stable():
    docs = stdlib_corpus(300)
    assert len(docs) == 300
    assert docs == stdlib_corpus(300)
    assert len({d["_id"].split(".")[0] for d in docs}) > 50  # spread over many modules
    assert all(len(d["text"]) >= 40 for d in docs)


@pytest.mark.opensearch
@pytest.mark.slow
def test_quickstart_indexes_searches_reranks_and_explains(opensearch_cluster, index_names):
    index = index_names(opensearch_cluster)
    args = [
        "quickstart",
        "--es-url",
        opensearch_cluster.url,
        "--index",
        index,
        "--max-docs",
        "400",
        "--no-progress",
    ]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert "Indexing 400 Python standard-library docstrings" in first.stderr
    out = first.stdout
    assert "Query: parse command line arguments" in out
    assert "SPLADE first stage" in out and "After ColBERT MaxSim reranking" in out
    assert "why #1:" in out and "splade-es index corpus.jsonl" in out

    again = cli(*args, "--json", "--query", "compress data with gzip")
    assert again.returncode == 0, again.stderr
    assert "Reusing index" in again.stderr
    (result,) = json.loads(again.stdout)
    assert result["query"] == "compress data with gzip"
    assert any(h["id"].startswith(("gzip.", "zlib.")) for h in result["reranked"])
    top = result["splade"][0]
    assert top["terms"] and top["terms"][0]["contribution"] > 0
    assert result["reranked"][0]["alignments"]
