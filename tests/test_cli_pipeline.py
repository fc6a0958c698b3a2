"""The CLI as users run it: index, search, explain, eval against the real nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_runner import cli
from corpus_fixture import DOCS, write_beir, write_jsonl

from splade_es.engines.node import free_ports

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"


def test_index_search_explain(cluster, index_names, tmp_path):
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl",
        [*DOCS, {"_id": "bad", "text": ""}, {"_id": "cook-1", "text": "dup"}],
    )
    index = index_names(cluster)
    alias = index_names(cluster, "live")
    dead = tmp_path / "dead.jsonl"
    common = ["--es-url", cluster.url, "--no-progress"]
    failed = cli(
        "index", str(corpus), "--index", index, "--dead-letter", str(dead), *common, cwd=tmp_path
    )
    assert failed.returncode == 1, failed.stderr
    assert "2 document(s) were not indexed" in failed.stderr
    assert f"indexed        {len(DOCS)}" in failed.stdout
    assert [json.loads(line)["id"] for line in dead.read_text().splitlines()] == ["bad", "cook-1"]

    again = cli(
        "index",
        str(corpus),
        "--index",
        index,
        "--dead-letter",
        str(dead),
        "--allow-failures",
        "--alias",
        alias,
        *common,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert (
        f"skipped        {len(DOCS)} (already indexed" in again.stdout
    )  # resumed from the checkpoint
    assert f"alias          {alias} -> {index}" in again.stdout

    found = cli(
        "search", "how is espresso coffee made", "--index", alias, "--json", "--es-url", cluster.url
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits[0]["_id"] == "cook-2" and hits[0]["rank"] == 1 and len(hits) == 10

    plain = cli(
        "search",
        "espresso",
        "--index",
        alias,
        "-k",
        "3",
        "--mode",
        "hybrid",
        "--es-url",
        cluster.url,
    )
    assert plain.returncode == 0 and len(plain.stdout.strip().splitlines()) == 3

    explained = cli(
        "explain",
        "espresso coffee",
        "--id",
        "cook-2",
        "--index",
        alias,
        "--json",
        "--es-url",
        cluster.url,
    )
    assert explained.returncode == 0, explained.stderr
    body = json.loads(explained.stdout)
    assert body["id"] == "cook-2" and body["impacts"][0]["contribution"] > 0
    assert body["score"] == pytest.approx(sum(i["contribution"] for i in body["impacts"]))


def test_eval_on_a_fixture_dataset(cluster, index_names, tmp_path):
    dataset = write_beir(tmp_path / "tiny")
    index = index_names(cluster)
    out = tmp_path / "report"
    result = cli(
        "eval",
        "--corpus",
        str(dataset),
        "--out",
        str(out),
        "--check-exact",
        "--index",
        index,
        "--es-url",
        cluster.url,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    for stage in ("bm25", "splade"):
        values = report["stages"][stage]
        assert set(values) >= {
            "ndcg@10",
            "recall@100",
            "mrr@10",
            "latency_ms_p50",
            "latency_ms_p95",
            "num_queries",
        }
        assert values["num_queries"] == 4
    assert report["stages"]["splade"]["ndcg@10"] == pytest.approx(1.0)
    assert report["index_docs"] == len(DOCS) and report["index_size_bytes"] > 0
    assert report["model"] == "splade-tiny"
    parity = report["parity"]
    assert parity["top10_identical_fraction_stored_precision"] == 1.0
    assert {"top10_identical_fraction", "ndcg@10_engine", "ndcg@10_exact"} <= set(parity)
    assert (out / "report.md").read_text().startswith("# tiny (test)")
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    reused = cli(
        "eval",
        "--corpus",
        str(dataset),
        "--out",
        str(out),
        "--index",
        index,
        "--es-url",
        cluster.url,
        "--no-progress",
    )
    assert reused.returncode == 0
    assert json.loads((out / "report.json").read_text())["indexing"]["reused"] is True


@pytest.mark.opensearch
@pytest.mark.slow
def test_eval_on_a_scifact_subset(opensearch_cluster, index_names, tmp_path):
    if not SCIFACT.is_dir():
        pytest.skip(f"SciFact is not at {SCIFACT} (the workplace's shared datasets)")
    out = tmp_path / "scifact"
    result = cli(
        "eval",
        "--corpus",
        str(SCIFACT),
        "--out",
        str(out),
        "--max-queries",
        "30",
        "--max-docs",
        "300",
        "--check-exact",
        "--index",
        index_names(opensearch_cluster),
        "--es-url",
        opensearch_cluster.url,
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["index_docs"] == 300 and report["stages"]["splade"]["num_queries"] == 30
    assert report["stages"]["splade"]["ndcg@10"] > 0.6
    assert report["parity"]["top10_identical_fraction_stored_precision"] == 1.0


def test_bad_cli_input(tmp_path):
    (port,) = free_ports(1)
    down = cli(
        "search",
        "x",
        "--index",
        "i",
        "--model",
        "splade-tiny",
        "--es-url",
        f"http://127.0.0.1:{port}",
    )
    assert down.returncode == 1 and f"No answer from http://127.0.0.1:{port}" in down.stderr
    assert "Traceback" not in down.stderr
    bad_url = cli("capabilities", "--es-url", "http://user:secret@127.0.0.1:1")
    assert (
        bad_url.returncode == 1
        and "not in the URL" in bad_url.stderr
        and "secret" not in bad_url.stderr
    )
    bad_name = cli(
        "index",
        str(write_jsonl(tmp_path / "c.jsonl")),
        "--index",
        "Bad*Name",
        "--es-url",
        "http://127.0.0.1:1",
    )
    assert bad_name.returncode == 1 and "Index name 'Bad*Name' is not allowed" in bad_name.stderr
    bad_filter = cli(
        "search", "x", "--index", "i", "--filter", "{oops", "--es-url", "http://127.0.0.1:1"
    )
    assert bad_filter.returncode == 2 and "is not JSON" in bad_filter.stderr


def test_colbert_index_search_rerank_and_explain(cluster, index_names, tmp_path):
    corpus = write_jsonl(tmp_path / "corpus.jsonl")
    index = index_names(cluster)
    common = ["--es-url", cluster.url, "--no-progress"]
    built = cli(
        "index",
        str(corpus),
        "--index",
        index,
        "--colbert",
        "--codec",
        "residual",
        *common,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    assert (
        "colbert tokens" in built.stdout
        and "ColBERT: all-MiniLM-L6-v2 (384 dims), residual codec" in built.stderr
    )

    reranked = cli(
        "search",
        "does aspirin prevent heart attacks",
        "--index",
        index,
        "--rerank",
        "-k",
        "3",
        "--json",
        "--es-url",
        cluster.url,
    )
    assert reranked.returncode == 0, reranked.stderr
    hits = json.loads(reranked.stdout)
    assert hits[0]["_id"] == "med-1" and len(hits) == 3
    assert {"_first_stage_score", "_colbert_score"} <= set(hits[0])
    assert "colbert" not in hits[0]["_source"]  # the blob is not echoed back
    assert re.search(
        r"reranked \d+ hits: query [\d.]+ ms, decode [\d.]+ ms, MaxSim", reranked.stderr
    )

    explained = cli(
        "explain",
        "heart attack",
        "--id",
        "med-1",
        "--index",
        index,
        "--colbert",
        "--json",
        "--es-url",
        cluster.url,
    )
    assert explained.returncode == 0, explained.stderr
    matches = json.loads(explained.stdout)["colbert"]
    # Stored rows are pooled tokens (the default pool factor 2): a row is labelled with the
    # tokens it merged, joined by "+".
    matched = {m["query_token"]: m["document_token"] for m in matches}["heart"]
    assert set(matched.split("+")) == {"heart"}, matched
