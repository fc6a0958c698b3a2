"""Options that must reach the library through the command, checked on what the command did.

``splade-es index`` with ``--doc-top-k``, ``--max-stored-tokens`` and ``--colbert-dim``: the
stored documents, read back from the node. ``splade-es search --fusion/--splade-weight``: the
printed ranking, against the library's ``search_then_rerank``. ``splade-es node start
--secure``: a TLS node with basic auth that the other commands reach with its credentials.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fusion_corpus
import pytest
from cli_runner import cli
from corpus_fixture import DOCS, write_jsonl

from colbert_rerank.codecs import read_header
from colbert_rerank.fusion import Fusion
from colbert_rerank.hits import hit_value
from colbert_rerank.projection import Projection
from colbert_rerank.storage import fetch_clause, stored_form
from conftest import IndexNames, cache_dir
from splade_es.cluster.admin import get_index
from splade_es.cluster.companion import codebook_index_name
from splade_es.data.corpus import from_records
from splade_es.indexing.build import BuildConfig, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.search.pipeline import Retrieval, search_then_rerank
from splade_es.search.searcher import SearchConfig, Searcher

TOP_K, MAX_TOKENS, DIM = 5, 8, 128
TEXTS = {d["_id"]: f"{d['title']} {d['text']}" for d in DOCS}


def base_env() -> dict[str, str]:
    """This environment without cluster settings: the test's flags are all the command sees."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "OPENSEARCH_"))}


@pytest.fixture(scope="module")
def cli_index(es_cluster, tmp_path_factory) -> Iterator[tuple[str, Any]]:
    """DOCS indexed once by the command with the pruning and ColBERT storage flags."""
    folder = tmp_path_factory.mktemp("cli-wiring")
    names = IndexNames("cli-wiring")
    index = names(es_cluster)
    try:
        run = cli(
            "index", str(write_jsonl(folder / "corpus.jsonl")), "--index", index,
            "--es-url", es_cluster.url, "--no-progress", "--cache-dir", str(folder / "cache"),
            "--doc-top-k", str(TOP_K),
            "--colbert", "--max-stored-tokens", str(MAX_TOKENS), "--colbert-dim", str(DIM),
            cwd=folder,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        yield index, run
    finally:
        names.cleanup()


def stored_documents(cluster, index: str) -> dict[str, dict[str, Any]]:
    """Every document's SPLADE features and ColBERT blob, as the node returns them."""
    info = get_index(cluster, index)
    meta = info.all_meta["colbert_rerank"]
    splade, colbert = info.meta["field"], meta["field"]
    body = {"size": 100, "_source": cluster.source_filter([splade])}
    body.update(fetch_clause(colbert, stored_form(meta)))  # doc values by default
    hits = cluster.request("POST", f"/{index}/_search", body=body)["hits"]["hits"]
    return {
        h["_id"]: {"splade": h["_source"][splade], "colbert": hit_value(h, colbert)} for h in hits
    }


@pytest.mark.es
def test_doc_top_k_caps_the_stored_terms(es_cluster, cli_index, splade_encoder):
    index, run = cli_index
    stored = stored_documents(es_cluster, index)
    assert set(stored) == set(TEXTS)
    unpruned = splade_encoder.encode_documents(list(TEXTS.values())).vectors
    assert min(len(v.ids) for v in unpruned) > TOP_K  # without the flag, every one has more
    assert {doc: len(d["splade"]) for doc, d in stored.items()} == dict.fromkeys(TEXTS, TOP_K)
    assert get_index(es_cluster, index).meta["document_pruning"] == f"top_k={TOP_K}"
    assert f"avg terms/doc  {TOP_K:.1f}" in run.stdout


@pytest.mark.es
def test_max_stored_tokens_caps_the_stored_embeddings(es_cluster, cli_index, colbert_encoder):
    index, run = cli_index
    stored = stored_documents(es_cluster, index)
    counts = {doc: read_header(base64.b64decode(d["colbert"])).count for doc, d in stored.items()}
    full = colbert_encoder.encode_documents(list(TEXTS.values())).embeddings
    uncapped = {doc: e.shape[0] for doc, e in zip(TEXTS, full, strict=True)}
    # Capped first, then pooled by the default factor 2 into ceil(tokens / 2) rows.
    assert counts == {doc: -(-min(n, MAX_TOKENS) // 2) for doc, n in uncapped.items()}
    capped = [doc for doc, n in uncapped.items() if n > MAX_TOKENS]
    assert capped  # the corpus really has longer documents
    dropped = sum(uncapped[doc] - MAX_TOKENS for doc in capped)
    assert f"colbert capped {len(capped)} docs, {dropped} tokens dropped" in run.stdout
    assert (
        get_index(es_cluster, index).all_meta["colbert_rerank"]["max_stored_tokens"] == MAX_TOKENS
    )


@pytest.mark.es
def test_colbert_dim_reduces_the_stored_embeddings(es_cluster, cli_index, colbert_encoder):
    index, _ = cli_index
    stored = stored_documents(es_cluster, index)
    dims = {read_header(base64.b64decode(d["colbert"])).dim for d in stored.values()}
    assert dims == {DIM} and colbert_encoder.dim != DIM
    meta = get_index(es_cluster, index).all_meta["colbert_rerank"]
    assert (meta["dim"], meta["model_dim"]) == (DIM, colbert_encoder.dim)
    book = es_cluster.request("GET", f"/{codebook_index_name(index)}/_doc/codebook")["_source"]
    assert book["dim"] == DIM
    projection = Projection.from_bytes(base64.b64decode(book["projection"]))
    assert (projection.input_dim, projection.output_dim) == (colbert_encoder.dim, DIM)


@pytest.mark.es
@pytest.mark.parametrize(
    ("method", "weight", "top"),
    [
        ("rrf", 0.5, fusion_corpus.RRF_TOP),
        ("weighted", 0.5, fusion_corpus.BM25_TOP),
        ("weighted", 0.9, fusion_corpus.SPLADE_TOP),
    ],
)
def test_search_fusion_flags_print_the_fused_ranking(
    es_cluster, splade_encoder, index_names, method, weight, top
):
    index = index_names(es_cluster)
    config = BuildConfig(BulkConfig(index=index, progress=False))
    build_index(es_cluster, from_records(fusion_corpus.DOCS), splade_encoder, config)
    run = cli(
        "search", fusion_corpus.QUERY, "--index", index, "--es-url", es_cluster.url,
        "--mode", "hybrid", "--fusion", method, "--splade-weight", str(weight), "-k", "3",
        "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    printed = json.loads(run.stdout)
    searcher = Searcher(es_cluster, splade_encoder, SearchConfig(index=index))
    retrieval = Retrieval(k=3, mode="hybrid", fusion=Fusion(method=method, weight=weight))
    expected = search_then_rerank(searcher, fusion_corpus.QUERY, retrieval).hits
    assert [row["_id"] for row in printed] == [hit.id for hit in expected]
    assert [row["_score"] for row in printed] == pytest.approx([hit.score for hit in expected])
    assert printed[0]["_id"] == top and [row["rank"] for row in printed] == [1, 2, 3]


def test_secure_is_refused_for_elasticsearch_by_the_command(tmp_path):
    run = cli(
        "node", "start", "--engine", "elasticsearch", "--secure", "--cache-dir", str(tmp_path)
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "OpenSearch only, not 'elasticsearch'" in run.stderr
    assert not (tmp_path / "nodes").exists()  # refused before anything was started


@pytest.fixture
def private_cache(tmp_path: Path) -> Path:
    """A cache dir with its own node state that reuses the suite's downloads."""
    shared, private = cache_dir(), tmp_path / "cache"
    private.mkdir()
    for name in ("maven", "dist"):
        (shared / name).mkdir(parents=True, exist_ok=True)
        (private / name).symlink_to(shared / name)
    return private


@pytest.mark.opensearch
@pytest.mark.security
@pytest.mark.slow
def test_node_start_secure_serves_tls_with_basic_auth(private_cache):
    env = base_env() | {"SPLADE_ES_CACHE_DIR": str(private_cache)}
    start = ["node", "start", "--engine", "opensearch", "--secure", "--heap", "512m"]
    try:
        started = cli(*start, env=env)
        assert started.returncode == 0, started.stderr[-3000:]
        url = started.stdout.strip().splitlines()[-1]
        ca = re.search(r"TLS CA certificate: (\S+)", started.stdout)
        user = re.search(r"User: (\S+); password in (\S+) \(mode 0600\)", started.stdout)
        assert url.startswith("https://127.0.0.1:") and ca and user, started.stdout
        password = Path(user[2]).read_text().strip()
        assert password not in started.stdout + started.stderr
        probe = ["capabilities", "--es-url", url, "--ca-certs", ca[1]]
        allowed = cli(*probe, "--username", user[1], env=env | {"ES_PASSWORD": password})
        assert allowed.returncode == 0, allowed.stderr[-3000:]
        assert "opensearch" in allowed.stdout and "2.19.4" in allowed.stdout
        anonymous = cli(*probe, env=env)
        assert anonymous.returncode == 1 and "without credentials" in anonymous.stderr
        untrusted = cli(
            "capabilities",
            "--es-url",
            url,
            "--username",
            user[1],
            env=env | {"ES_PASSWORD": password},
        )
        assert untrusted.returncode == 1 and "--ca-certs" in untrusted.stderr
    finally:
        stopped = cli("node", "stop", "--engine", "opensearch", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
