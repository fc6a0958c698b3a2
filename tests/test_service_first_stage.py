"""The service's first stage in front of the real nodes: a SPLADE or fused first stage keeps
every restriction of the app's query, a failing SPLADE encoding passes the request through,
``max_score`` is the best of the hits ranked, characters JSON allows but UTF-8 does not, and a
first stage that answers an error is not sent twice."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from service_fixture import (
    FakeUpstream,
    build_indices,
    drop_indices,
    running,
    service_config,
)

from splade_es.encoding.encoder import SpladeEncoder
from splade_es.service import ServiceModels
from splade_es.service.rerank_stage import ModelPool, PoolBusy

RERANK_K = 5
ALLOWED = ["med-1", "cook-1"]
# Both allowed documents match the text, so the app's own query finds exactly them.
TEXT = {"match": {"text": "aspirin heart water"}}
IDS = {"ids": {"values": ALLOWED}}


@pytest.fixture(scope="module")
def es_indices(es_cluster, splade_encoder, colbert_encoder):
    names = build_indices(es_cluster, splade_encoder, colbert_encoder)
    yield names
    drop_indices(names)


@pytest.fixture(scope="module")
def opensearch_indices(opensearch_cluster, splade_encoder, colbert_encoder):
    names = build_indices(opensearch_cluster, splade_encoder, colbert_encoder)
    yield names
    drop_indices(names)


@pytest.fixture(scope="module")
def models(colbert_encoder, splade_encoder):
    return ServiceModels(colbert_encoder, splade_encoder)


def without_took(content: bytes) -> bytes:
    return re.sub(rb'"took":\d+', b'"took":0', content, count=1)


RESTRICTED = [
    {"bool": {"must": [TEXT, IDS]}},
    {"bool": {"must": [{"bool": {"must": [TEXT, IDS]}}]}},
    {"bool": {"must": [TEXT, {"bool": {"should": [{"term": {"_id": i}} for i in ALLOWED]}}]}},
    {"bool": {"should": [TEXT], "filter": [IDS]}},
]


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("es", marks=pytest.mark.es),
        pytest.param("opensearch", marks=pytest.mark.opensearch),
    ],
)
@pytest.mark.parametrize("mode", ["splade", "fusion"])
@pytest.mark.parametrize("query", RESTRICTED, ids=["must-ids", "nested", "must-bool", "filter"])
def test_splade_and_fusion_return_only_what_the_app_query_allows(
    request, models, engine, mode, query
):
    indices = request.getfixturevalue(f"{engine}_indices")
    index = indices.reranked
    body = {"query": query, "size": 10, "track_total_hits": True}
    config = service_config(indices.cluster.url, "svc-*", rerank_k=RERANK_K, first_stage=mode)
    with running(config, models) as url:
        proxied = httpx.post(f"{url}/{index}/_search", json=body, timeout=60)
    direct = httpx.post(f"{indices.cluster.url}/{index}/_search", json=body).json()
    assert proxied.status_code == 200, proxied.text
    assert proxied.headers["x-splade-es"] in ("reranked 1", "reranked 2")
    answer = proxied.json()
    ids = [hit["_id"] for hit in answer["hits"]["hits"]]
    assert {hit["_id"] for hit in direct["hits"]["hits"]} == set(ALLOWED)
    assert ids and set(ids) <= set(ALLOWED)
    assert answer["hits"]["total"] == direct["hits"]["total"] == {"value": 2, "relation": "eq"}
    assert len(ids) <= answer["hits"]["total"]["value"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (
            {"bool": {"should": [TEXT, IDS]}},
            "bool.should restricts the hits of a splade first stage",
        ),
        (
            {"bool": {"should": [TEXT], "minimum_should_match": 1}},
            "bool.minimum_should_match with a splade first stage",
        ),
    ],
    ids=["should-ids", "minimum-should-match"],
)
def test_restrictions_splade_cannot_keep_pass_through(es_indices, models, query, reason):
    index = es_indices.reranked
    body = {"query": query, "size": 10}
    config = service_config(es_indices.cluster.url, "svc-*", first_stage="splade")
    with running(config, models) as url:
        proxied = httpx.post(f"{url}/{index}/_search", json=body, timeout=60)
    direct = httpx.post(f"{es_indices.cluster.url}/{index}/_search", json=body)
    assert proxied.headers["x-splade-es"] == f"passthrough; {reason}"
    assert without_took(proxied.content) == without_took(direct.content)


ERRORS = {"error": RuntimeError("model exploded"), "busy": PoolBusy("8"), "timeout": TimeoutError()}


def fail_encoding(monkeypatch, how: str) -> None:
    def broken(*args, **kwargs):
        raise ERRORS[how]

    if how == "error":
        monkeypatch.setattr(SpladeEncoder, "encode_queries", broken)
    else:
        monkeypatch.setattr(ModelPool, "run", broken)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("error", "splade encode error: RuntimeError"),
        ("busy", "splade encode busy"),
        ("timeout", "splade encode timeout"),
    ],
)
def test_a_failing_splade_encoding_passes_the_request_through(
    es_indices, models, monkeypatch, how, reason
):
    index = es_indices.reranked
    body = {"query": {"bool": {"must": [TEXT]}}, "size": 3}
    config = service_config(es_indices.cluster.url, "svc-*", first_stage="fusion")
    with running(config, models) as url:
        fail_encoding(monkeypatch, how)
        proxied = httpx.post(f"{url}/{index}/_search", json=body, timeout=60)
    direct = httpx.post(f"{es_indices.cluster.url}/{index}/_search", json=body)
    assert proxied.status_code == 200, proxied.text
    assert proxied.headers["x-splade-es"] == f"passthrough; {reason}"
    assert without_took(proxied.content) == without_took(direct.content)


@pytest.mark.parametrize("mode", ["splade", "fusion"])
def test_max_score_is_the_best_of_the_hits_ranked(es_indices, models, mode):
    index = es_indices.reranked
    body = {"query": {"match": {"text": "the water light star heart"}}, "size": 4}
    config = service_config(
        es_indices.cluster.url, "svc-*", first_stage=mode, rerank_timeout_ms=1
    )  # the rerank times out: the first stage's answer goes back
    with running(config, models) as url:
        answer = httpx.post(f"{url}/{index}/_search", json=body, timeout=60)
    assert answer.headers["x-splade-es"] == "passthrough; rerank timeout"
    hits = answer.json()["hits"]
    assert hits["hits"] and hits["max_score"] == max(hit["_score"] for hit in hits["hits"])


def test_lone_surrogates_in_the_query_and_in_a_document(es_indices, colbert_encoder):
    cluster, index = es_indices.cluster, es_indices.reranked
    stored = b'{"title":"aspirin","text":"aspirin heart \\udc80 attack"}'
    headers = {"content-type": "application/json"}
    httpx.put(f"{cluster.url}/{index}/_doc/odd?refresh=true", content=stored, headers=headers)
    try:
        config = service_config(cluster.url, "svc-*", rerank_k=RERANK_K)
        with running(config, ServiceModels(colbert_encoder)) as url:
            query = b'{"query":{"match":{"text":"aspirin \\ud800 heart"}}}'
            asked = httpx.post(f"{url}/{index}/_search", content=query, headers=headers)
            found = httpx.post(f"{url}/{index}/_search", json={"query": TEXT}, timeout=60)
    finally:
        httpx.delete(f"{cluster.url}/{index}/_doc/odd?refresh=true")
    assert asked.status_code == 200, asked.text
    assert found.status_code == 200, found.text
    assert found.headers["x-splade-es"].startswith("reranked ")
    odd = [hit for hit in found.json()["hits"]["hits"] if hit["_id"] == "odd"]
    assert odd and odd[0]["_source"]["text"] == "aspirin heart \udc80 attack"


@pytest.mark.parametrize("status", [400, 503])
def test_a_first_stage_error_goes_back_as_it_came_and_is_not_sent_twice(
    es_indices, colbert_encoder, status
):
    index = es_indices.reranked
    mapping = httpx.get(f"{es_indices.cluster.url}/{index}/_mapping").content
    error = json.dumps({"error": {"type": "x_exception", "reason": "no"}, "status": status})
    routes = {f"/{index}/_mapping": (200, mapping), f"/{index}/_search": (status, error.encode())}
    with FakeUpstream(routes=routes) as fake:
        config = service_config(fake.url, "svc-*")
        with running(config, ServiceModels(colbert_encoder)) as url:
            answer = httpx.post(f"{url}/{index}/_search", json={"query": TEXT})
    assert answer.status_code == status
    assert answer.content == error.encode()
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-splade-es"] == f"passthrough; first stage answered {status}"
    assert [path for path in fake.paths if path.endswith("/_search")] == [f"/{index}/_search"]
