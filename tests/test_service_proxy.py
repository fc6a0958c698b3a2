"""The reranking service in front of the real nodes: pass-through byte for byte, reranked
``_search`` answers through the official clients, fail open, health and metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import httpx
import pytest
from service_fixture import QUERY, build_indices, drop_indices, running, service_config

from colbert_rerank.rerank import Reranker
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.service import ServiceModels

RERANK_K = 5
ENGINES = [
    pytest.param("elasticsearch", marks=pytest.mark.es),
    pytest.param("opensearch", marks=pytest.mark.opensearch),
]
# Plain words, so the match finds most documents and the page is past the rerank depth.
TEXT = f"{QUERY} the risk of a star and the light in the water"
MATCH = {"match": {"text": TEXT}}


@pytest.fixture(scope="module", params=ENGINES)
def indices(request, splade_encoder, colbert_encoder):
    fixture = "es_cluster" if request.param == "elasticsearch" else "opensearch_cluster"
    names = build_indices(request.getfixturevalue(fixture), splade_encoder, colbert_encoder)
    yield names
    drop_indices(names)


@pytest.fixture(scope="module")
def models(colbert_encoder):
    return ServiceModels(colbert_encoder)


@pytest.fixture(scope="module")
def service(indices, models):
    config = service_config(indices.cluster.url, "svc-*", rerank_k=RERANK_K)
    with running(config, models) as url:
        yield url


def expected_page(indices, colbert_encoder, index, query, offset, size, text=TEXT):
    """The library's answer: first stage on the node, rerank of its head in process."""
    cluster = indices.cluster
    depth = max(RERANK_K, offset + size)
    body = {"query": query, "size": depth}
    first = cluster.request("POST", f"/{index}/_search", body=body)["hits"]["hits"]
    head = open_reranker(cluster, index, colbert_encoder).rerank(text, first[:RERANK_K]).hits
    ordered = [h["_id"] for h in head] + [h["_id"] for h in first[RERANK_K:]]
    return ordered[offset : offset + size], {h["_id"]: h["_colbert_score"] for h in head}


def test_passed_through_answers_are_byte_identical(indices, service):
    upstream = indices.cluster.url
    requests = [
        ("GET", "/", None),
        ("GET", f"/{indices.plain}/_mapping", None),
        ("GET", f"/_cat/indices/{indices.reranked}?h=index,docs.count", None),
        ("GET", f"/{indices.plain}/_doc/{'med-1'}", None),
        ("POST", f"/{indices.plain}/_search?filter_path=-took", {"query": MATCH}),
        ("GET", f"/{indices.reranked}/_doc/missing-id", None),
    ]
    with httpx.Client() as client:
        for method, path, body in requests:
            direct = client.request(method, upstream + path, json=body)
            proxied = client.request(method, service + path, json=body)
            assert (proxied.status_code, proxied.content) == (direct.status_code, direct.content)
            assert proxied.headers["content-type"] == direct.headers["content-type"]
    searched = httpx.post(f"{service}/{indices.plain}/_search", json={"query": MATCH})
    assert searched.headers["x-splade-es"] == "passthrough; index not built by splade-es"


def test_the_official_client_gets_the_reranked_page(indices, service, colbert_encoder):
    index = indices.reranked
    if indices.cluster.engine == "elasticsearch":
        from elasticsearch import Elasticsearch

        with Elasticsearch(service, http_compress=True) as client:  # gzip bodies both ways
            response = client.search(index=index, query=MATCH, size=3, from_=2)
            body, header = response.body, response.meta.headers["x-splade-es"]
    else:
        from opensearchpy import OpenSearch

        client = OpenSearch(hosts=[service])
        body = client.search(index=index, body={"query": MATCH}, size=3, from_=2)
        header = httpx.post(f"{service}/{index}/_search", json={"query": MATCH}).headers[
            "x-splade-es"
        ]
        client.close()
    ids, colbert = expected_page(indices, colbert_encoder, index, MATCH, 2, 3)
    assert header == f"reranked {RERANK_K}"
    assert [hit["_id"] for hit in body["hits"]["hits"]] == ids
    for hit in body["hits"]["hits"]:
        assert hit["_colbert_score"] == pytest.approx(colbert[hit["_id"]], abs=1e-5)
        assert hit["_score"] == hit["_colbert_score"]
        assert isinstance(hit["_first_stage_score"], float)
        assert "fields" not in hit  # the doc values the service asked for are stripped


@pytest.mark.parametrize("which", ["reranked", "in_source"])
def test_filters_source_and_totals_are_the_apps(indices, service, colbert_encoder, which):
    index = getattr(indices, which)
    query = {"bool": {"must": [MATCH], "must_not": [{"ids": {"values": ["cook-1"]}}]}}
    body = {"query": query, "size": 4, "_source": ["title"], "track_total_hits": True}
    proxied = httpx.post(f"{service}/{index}/_search", json=body)
    direct = httpx.post(f"{indices.cluster.url}/{index}/_search", json=body).json()
    assert proxied.status_code == 200, proxied.text
    answer = proxied.json()
    assert proxied.headers["x-splade-es"] == f"reranked {RERANK_K}"
    assert answer["hits"]["total"] == direct["hits"]["total"]
    ids, _ = expected_page(indices, colbert_encoder, index, query, 0, 4)
    assert [hit["_id"] for hit in answer["hits"]["hits"]] == ids
    assert all(set(hit["_source"]) <= {"title"} for hit in answer["hits"]["hits"])
    assert all("fields" not in hit for hit in answer["hits"]["hits"])


def test_the_tail_past_rerank_k_keeps_first_stage_order(indices, service, colbert_encoder):
    index = indices.reranked
    body = {"query": {"match": {"text": "the a of"}}, "from": 3, "size": 6}
    answer = httpx.post(f"{service}/{index}/_search", json=body).json()
    ids, colbert = expected_page(
        indices, colbert_encoder, index, body["query"], 3, 6, text="the a of"
    )
    assert [hit["_id"] for hit in answer["hits"]["hits"]] == ids
    tail = [hit for hit in answer["hits"]["hits"] if hit["_id"] not in colbert]
    assert tail and all("_colbert_score" not in hit for hit in tail)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"query": {"term": {"title": "aspirin"}}}, "query text unreadable"),
        ({"query": MATCH, "sort": ["_doc"]}, "sort in the body"),
        ({"query": MATCH, "size": 0}, "size 0"),
    ],
    ids=["term", "sort", "size-0"],
)
def test_requests_it_cannot_read_pass_through(indices, service, body, reason):
    path = f"/{indices.reranked}/_search"
    proxied = httpx.post(service + path, json=body)
    direct = httpx.post(indices.cluster.url + path, json=body)
    assert proxied.headers["x-splade-es"] == f"passthrough; {reason}"
    assert proxied.status_code == direct.status_code
    assert without_took(proxied.content) == without_took(direct.content)


def without_took(content: bytes) -> bytes:
    """The answer with its ``took`` zeroed (the one field two runs of a search differ in)."""
    return re.sub(rb'"took":\d+', b'"took":0', content, count=1)


def test_a_failing_reranker_fails_open(indices, service, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(Reranker, "rerank", broken)
    body = {"query": MATCH, "from": 1, "size": 3}
    proxied = httpx.post(f"{service}/{indices.reranked}/_search", json=body)
    direct = httpx.post(f"{indices.cluster.url}/{indices.reranked}/_search", json=body).json()
    assert proxied.status_code == 200
    assert proxied.headers["x-splade-es"] == "passthrough; rerank error: RuntimeError"
    hits = proxied.json()["hits"]["hits"]
    assert [h["_id"] for h in hits] == [h["_id"] for h in direct["hits"]["hits"]]
    assert all("fields" not in h and "_colbert_score" not in h for h in hits)


def test_a_rerank_past_its_budget_fails_open(indices, models):
    config = service_config(indices.cluster.url, "svc-*", rerank_timeout_ms=1)
    with running(config, models) as url:
        proxied = httpx.post(f"{url}/{indices.reranked}/_search", json={"query": MATCH})
        metrics = httpx.get(f"{url}/_splade_es/metrics").text
    assert proxied.status_code == 200
    assert proxied.headers["x-splade-es"] == "passthrough; rerank timeout"
    assert proxied.json()["hits"]["hits"]
    assert 'splade_es_fail_open_total{reason="rerank timeout"} 1.0' in metrics


def test_health_and_metrics(indices, service):
    httpx.post(f"{service}/{indices.reranked}/_search", json={"query": MATCH})
    health = httpx.get(f"{service}/_splade_es/health")
    assert health.status_code == 200
    assert health.json()["upstream"]["reachable"] is True
    assert health.json()["models"]["colbert"] == "all-MiniLM-L6-v2"
    metrics = httpx.get(f"{service}/_splade_es/metrics").text
    assert 'splade_es_requests_total{outcome="reranked"}' in metrics
    assert 'splade_es_stage_seconds_bucket{le="0.005",stage="rerank"}' in metrics
    assert "splade_es_reranked_hits_total" in metrics


@pytest.mark.parametrize("mode", ["splade", "fusion"])
def test_splade_and_fusion_first_stages_keep_filters_and_aggregations(
    indices, splade_encoder, colbert_encoder, mode
):
    index = indices.reranked
    allowed = ["astro-1", "astro-2", "bio-1", "bio-2", "med-1", "med-2", "cook-1", "cook-2"]
    body = {
        "query": {"bool": {"must": [MATCH], "filter": [{"ids": {"values": allowed}}]}},
        "size": 3,
        "aggs": {"all": {"global": {}}},
    }
    models = ServiceModels(colbert_encoder, splade_encoder)
    config = service_config(indices.cluster.url, "svc-*", rerank_k=RERANK_K, first_stage=mode)
    with running(config, models) as url:
        proxied = httpx.post(f"{url}/{index}/_search", json=body)
    assert proxied.status_code == 200, proxied.text
    assert proxied.headers["x-splade-es"] == f"reranked {RERANK_K}"
    answer = proxied.json()
    assert answer["aggregations"]["all"]["doc_count"] == 16  # the engine's, over the app's query
    hits = answer["hits"]["hits"]
    assert len(hits) == 3 and {hit["_id"] for hit in hits} <= set(allowed)
    if mode == "splade":
        searcher = Searcher(indices.cluster, splade_encoder, SearchConfig(index=index))
        first = searcher.search(TEXT, RERANK_K, filters=[{"ids": {"values": allowed}}])
        reranker = open_reranker(indices.cluster, index, colbert_encoder)
        expected = reranker.rerank(TEXT, [hit.as_dict() for hit in first]).hits
        assert [hit["_id"] for hit in hits] == [hit["_id"] for hit in expected[:3]]


def curl(*args: str) -> tuple[dict[str, str], bytes]:
    """``curl -s -i`` as a shell script would call it: the headers (lower-cased) and body."""
    out = subprocess.run(["curl", "-s", "-i", *args], capture_output=True, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    return headers, body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_the_same_bytes_and_a_reranked_search(indices, service, colbert_encoder):
    path = f"/_cat/indices/{indices.reranked}?h=index,docs.count&format=json"
    assert curl(service + path)[1] == curl(indices.cluster.url + path)[1]
    index, query = indices.reranked, json.dumps({"query": MATCH, "size": 3})
    json_type = ("-H", "Content-Type: application/json")
    headers, body = curl("-X", "POST", *json_type, "-d", query, f"{service}/{index}/_search")
    assert headers["x-splade-es"] == f"reranked {RERANK_K}"
    ids = [hit["_id"] for hit in json.loads(body)["hits"]["hits"]]
    assert ids == expected_page(indices, colbert_encoder, index, MATCH, 0, 3)[0]
