"""The service's pure parts: query text, the first-stage rewrite, the embeddings route and
strip, the answer shapes, and the request guards. No node, no model."""

from __future__ import annotations

import pytest

from splade_es.service.catalog import SpladeField
from splade_es.service.embeddings import (
    EmbeddingSource,
    Route,
    embedding_route,
    embeddings_from,
    fetch_request,
)
from splade_es.service.first_stage import fused_hits, splade_body
from splade_es.service.guards import refusal, search_target
from splade_es.service.queries import Unhandled, app_filters, plan_search, query_text
from splade_es.service.responses import error_body, first_stage_answer, reranked_answer

DV = EmbeddingSource("colbert", "doc_values")
STORED = EmbeddingSource("colbert", "stored")
SOURCE = EmbeddingSource("colbert", "source")
MATCH = {"match": {"text": "heart attack"}}


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"match": {"text": "heart attack"}}, "heart attack"),
        ({"match": {"text": {"query": " heart ", "operator": "and"}}}, "heart"),
        ({"match_phrase": {"title": "heart attack"}}, "heart attack"),
        ({"multi_match": {"query": "aspirin", "fields": ["title", "text"]}}, "aspirin"),
        ({"query_string": {"query": "title:aspirin"}}, "title:aspirin"),
        ({"simple_query_string": {"query": "aspirin -coffee"}}, "aspirin -coffee"),
        ({"bool": {"must": MATCH, "should": [{"match": {"t": "risk"}}]}}, "heart attack risk"),
        ({"bool": {"must": [MATCH, {"range": {"year": {"gte": 1}}}]}}, "heart attack"),
        ({"bool": {"should": [{"bool": {"must": [MATCH]}}]}}, "heart attack"),
        ({"match": {"text": "日本語の検索"}}, "日本語の検索"),
    ],
)
def test_query_text_reads_the_apps_query(query, text):
    assert query_text(query) == text


@pytest.mark.parametrize(
    "query",
    [
        None,
        {},
        {"match_all": {}},
        {"term": {"tag": "x"}},
        {"match": {"text": ""}},
        {"match": {"a": "x", "b": "y"}},
        {"match": {"text": 42}},
        {"multi_match": {"fields": ["t"]}},
        {"bool": {"filter": [MATCH]}},
        {"bool": {"must_not": [MATCH]}},
        {"function_score": {"query": MATCH}},
        {"match": MATCH, "term": {}},
        "heart attack",
    ],
)
def test_unreadable_queries_give_none(query):
    assert query_text(query) is None


def test_app_filters_keeps_filter_and_negates_must_not():
    query = {"bool": {"must": MATCH, "filter": {"term": {"y": 1}}, "must_not": [{"ids": {}}]}}
    assert app_filters(query) == [{"term": {"y": 1}}, {"bool": {"must_not": [{"ids": {}}]}}]
    assert app_filters(MATCH) == []


IDS = {"ids": {"values": ["med-1"]}}
RANGE = {"range": {"year": {"gte": 2020}}}


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ({"bool": {"must": [MATCH, IDS]}}, [IDS]),
        (
            {"bool": {"must": [MATCH, {"term": {"t": "a"}}, RANGE], "boost": 2}},
            [
                {"term": {"t": "a"}},
                RANGE,
            ],
        ),
        ({"bool": {"must": [{"bool": {"must": [MATCH, IDS], "filter": RANGE}}]}}, [IDS, RANGE]),
        (
            {"bool": {"must": [MATCH, {"bool": {"should": [IDS, RANGE]}}]}},
            [{"bool": {"should": [IDS, RANGE]}}],
        ),
        (
            {"bool": {"must": {"query_string": {"query": "tenant:a AND x"}}}},
            [{"query_string": {"query": "tenant:a AND x"}}],
        ),
        ({"bool": {"should": [MATCH, {"bool": {"must": [MATCH]}}], "filter": IDS}}, [IDS]),
        ({"multi_match": {"query": "x", "fields": ["t"]}}, []),
    ],
    ids=["ids", "term-range", "nested", "no-text-bool", "query-string", "should-text", "multi"],
)
def test_app_filters_keep_every_restriction_of_must(query, kept):
    assert app_filters(query) == kept


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"bool": {"should": [MATCH, IDS]}}, "bool.should restricts the hits"),
        ({"bool": {"must": MATCH, "should": [RANGE]}}, "bool.should restricts the hits"),
        ({"bool": {"should": [{"bool": {"must": [MATCH, IDS]}}]}}, "bool.should restricts"),
        ({"bool": {"should": [MATCH], "minimum_should_match": 1}}, "minimum_should_match"),
        ({"bool": {"must": [{"bool": {"must": MATCH, "should": IDS}}]}}, "bool.should"),
        ({"bool": {"must": MATCH, "unknown": 1}}, "bool query key unreadable"),
    ],
)
def test_restrictions_a_filter_cannot_keep_pass_through(query, reason):
    with pytest.raises(Unhandled, match=reason):
        app_filters(query)


def test_plan_asks_for_the_rerank_depth_from_zero_and_keeps_the_rest():
    body = {
        "query": MATCH,
        "from": 20,
        "size": 5,
        "_source": ["title"],
        "track_total_hits": True,
        "aggs": {"n": {"global": {}}},
    }
    plan = plan_search(body, [("routing", "r1")], 10, DV)
    assert (plan.text, plan.offset, plan.size, plan.depth) == ("heart attack", 20, 5, 25)
    assert plan.body == {
        "query": MATCH,
        "size": 25,
        "_source": ["title"],
        "track_total_hits": True,
        "aggs": {"n": {"global": {}}},
        "docvalue_fields": ["colbert"],
    }
    assert plan.params == (("routing", "r1"),)
    assert body["from"] == 20 and "docvalue_fields" not in body  # the app's body is untouched


def test_plan_takes_size_and_from_from_the_query_string():
    plan = plan_search({"query": MATCH, "size": 50}, [("size", "3"), ("from", "1")], 100, DV)
    assert (plan.offset, plan.size, plan.depth, plan.params) == (1, 3, 100, ())
    defaults = plan_search({"query": MATCH}, [], 100, DV)
    assert (defaults.offset, defaults.size) == (0, 10)


@pytest.mark.parametrize(
    ("body", "params", "reason"),
    [
        ([], [], "body is not a JSON object"),
        ({"query": MATCH, "sort": ["_doc"]}, [], "sort in the body"),
        ({"query": MATCH, "search_after": [1]}, [], "search_after in the body"),
        ({"query": MATCH, "collapse": {"field": "x"}}, [], "collapse in the body"),
        ({"query": MATCH}, [("scroll", "1m")], "scroll in the query string"),
        ({"query": MATCH}, [("q", "x")], "q in the query string"),
        ({"query": MATCH}, [("filter_path", "hits")], "filter_path in the query string"),
        ({"query": {"term": {"t": "x"}}}, [], "query text unreadable"),
        ({}, [], "query text unreadable"),
        ({"query": MATCH, "size": 0}, [], "size 0"),
        ({"query": MATCH, "size": -1}, [], "size is not a non-negative integer"),
        ({"query": MATCH, "from": "x"}, [], "from is not a non-negative integer"),
        ({"query": MATCH, "size": True}, [], "size is not a non-negative integer"),
    ],
)
def test_requests_the_service_does_not_rewrite(body, params, reason):
    with pytest.raises(Unhandled, match=f"^{reason}$") as raised:
        plan_search(body, params, 100, DV)
    assert raised.value.reason == reason


def test_routes_by_stored_form():
    assert embedding_route({}, [], DV) == Route(DV, inline=True, added=True)
    own = embedding_route({"docvalue_fields": [{"field": "colbert"}]}, [], DV)
    assert own == Route(DV, inline=True, added=False)  # the app asked for it: kept
    assert embedding_route({}, [("docvalue_fields", "x")], DV).inline is False
    assert embedding_route({}, [], STORED) == Route(STORED, True, True, force_source=True)
    assert embedding_route({"_source": False}, [], STORED).force_source is False
    assert embedding_route({"stored_fields": "_none_"}, [], STORED).inline is False
    assert embedding_route({}, [("_source_includes", "t")], STORED).inline is False
    assert embedding_route({}, [], SOURCE) == Route(SOURCE, inline=False)


def test_route_apply_and_strip_round_trip():
    route = embedding_route({"stored_fields": ["title"]}, [], STORED)
    assert route.apply({"stored_fields": ["title"]}) == {"stored_fields": ["title", "colbert"]}
    forced = embedding_route({}, [], STORED)
    assert forced.apply({}) == {"stored_fields": ["colbert"], "_source": True}
    hit = {"_id": "a", "fields": {"colbert": ["QQ=="], "title": ["t"]}}
    assert route.strip(hit) == {"_id": "a", "fields": {"title": ["t"]}}
    assert route.strip({"_id": "a", "fields": {"colbert": ["QQ=="]}}) == {"_id": "a"}
    kept = Route(DV, inline=True, added=False)
    assert kept.strip(hit) == hit


def test_fetch_requests_and_their_answers():
    assert fetch_request("docs", ["a"], STORED)[2] == [("stored_fields", "colbert")]
    method, path, params, body = fetch_request("docs", ["a", "b"], DV)
    assert (method, path, params) == ("POST", "/docs/_search", [])
    assert body["docvalue_fields"] == ["colbert"] and body["size"] == 2
    mget = {"docs": [{"_id": "a", "found": True, "fields": {"colbert": ["QQ=="]}}]}
    mget["docs"].append({"_id": "b", "found": False})
    assert embeddings_from(mget, "colbert") == {"a": "QQ=="}
    hits = {"hits": {"hits": [{"_id": "a", "fields": {"colbert": ["QQ"]}}, {"_id": "c"}]}}
    assert embeddings_from(hits, "colbert") == {"a": "QQ"}
    assert embeddings_from([], "colbert") == {}


def first_stage(n: int) -> dict:
    hits = [
        {"_index": "docs", "_id": f"d{i}", "_score": 10.0 - i, "fields": {"colbert": ["QQ=="]}}
        for i in range(n)
    ]
    return {"took": 4, "hits": {"total": {"value": n}, "max_score": 10.0, "hits": hits}}


def test_reranked_answer_reorders_the_head_pages_and_strips():
    plan = plan_search({"query": MATCH, "from": 1, "size": 3}, [], 3, DV)
    answer = first_stage(5)
    reranked = [
        {"_id": f"d{i}", "_score": s, "_first_stage_score": 10.0 - i, "_colbert_score": s}
        for i, s in ((2, 0.9), (0, 0.8), (1, 0.7))
    ]
    out = reranked_answer(answer, reranked, plan, 2.4)
    assert [h["_id"] for h in out["hits"]["hits"]] == ["d0", "d1", "d3"]
    assert out["hits"]["hits"][0] == {
        "_index": "docs",
        "_id": "d0",
        "_score": 0.8,
        "_first_stage_score": 10.0,
        "_colbert_score": 0.8,
    }
    assert out["hits"]["hits"][2] == {"_index": "docs", "_id": "d3", "_score": 7.0}
    assert out["hits"]["total"] == {"value": 5} and out["took"] == 6
    assert out["hits"]["max_score"] == 7.0  # the tail's first-stage scores are larger
    assert answer["hits"]["hits"][0]["fields"]  # the upstream answer is left as it was


def test_reranked_answer_refuses_hits_outside_the_head():
    plan = plan_search({"query": MATCH}, [], 3, DV)
    stray = [{"_id": "d4", "_score": 1.0}]
    with pytest.raises(ValueError, match=r"Reranked hit 'd4' is not among the first 1"):
        reranked_answer(first_stage(5), stray, plan, 0.0)


def test_first_stage_answer_applies_from_and_size():
    plan = plan_search({"query": MATCH, "from": 3, "size": 5}, [], 3, DV)
    out = first_stage_answer(first_stage(5), plan)
    assert [h for h in out["hits"]["hits"]] == [
        {"_index": "docs", "_id": "d3", "_score": 7.0},
        {"_index": "docs", "_id": "d4", "_score": 6.0},
    ]
    assert first_stage_answer({"hits": {"hits": []}}, plan)["hits"]["hits"] == []


def test_error_body_has_the_engines_shape():
    assert error_body(503, "t", "down") == {
        "error": {"root_cause": [{"type": "t", "reason": "down"}], "type": "t", "reason": "down"},
        "status": 503,
    }


def test_splade_body_and_fusion():
    body = {"query": {"bool": {"must": MATCH, "filter": [{"term": {"y": 1}}]}}, "aggs": {}}
    out = splade_body(body, {"heart": 1.5}, SpladeField("splade", "sparse_vector"))
    assert out == {
        "query": {
            "bool": {
                "must": [
                    {"bool": {"should": [{"term": {"splade": {"value": "heart", "boost": 1.5}}}]}}
                ],
                "filter": [{"term": {"y": 1}}],
            }
        }
    }
    app = [{"_id": "a", "_score": 3.0}, {"_id": "b", "_score": 2.0}]
    learned = [{"_id": "b", "_score": 9.0}, {"_id": "c", "_score": 8.0}]
    assert [h["_id"] for h in fused_hits(app, learned, 2)] == ["b", "a"]
    assert fused_hits([], [], 5) == []


@pytest.mark.parametrize(
    ("raw_path", "headers", "problem"),
    [
        (b"http://evil/x", [], r"request target 'http://evil/x' is not a path"),
        (b"//evil/x", [], "is not a path"),
        (b"/a/../b", [], r"path segment '\.\.' is '\.\.' \(path traversal\)"),
        (b"/a/%2E%2e/b", [], r"path segment '%2E%2e' is '\.\.'"),
        (b"/a/.%2E", [], r"path segment '\.%2E' is '\.\.'"),
        (b"/a/.", [], r"path segment '\.' is '\.'"),
        (b"/a/%2e/b", [], r"path segment '%2e' is '\.'"),
        (b"/\xff", [], "is not ASCII"),
        (b"/", [(b"host", b"a"), (b"host", b"b")], "several Host headers"),
        (b"/", [(b"host", b"evil.com/x")], r"Host header 'evil.com/x' is not host\[:port\]"),
        (b"/", [(b"host", b"u@evil.com")], "is not host"),
    ],
)
def test_refused_targets(raw_path, headers, problem):
    found = refusal(raw_path, headers)
    assert found is not None
    with pytest.raises(ValueError, match=problem):
        raise ValueError(found)
    assert refusal(b"/", [], "CONNECT") == (
        "CONNECT is not allowed: the service only sends requests to its upstream"
    )


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/",
        b"/docs/_search",
        b"/docs/_doc/a%2Fb",
        b"/docs/_doc/a.b",
        b"/_cat/indices",
        b"/docs/_doc/C%3A%5Cdocs%5Ca.txt",  # a document id C:\docs\a.txt
        b"/docs/_doc/C:\\docs\\a.txt",
        b"/docs/_doc/a%2F..%2Fb",  # one segment to the upstream: the id a/../b
        b"/docs/_doc/%252e%252e",  # the upstream decodes once: the id %2e%2e
        b"/docs/_doc/...",
    ],
)
def test_ordinary_targets_pass(raw_path):
    assert refusal(raw_path, [(b"host", b"127.0.0.1:9280"), (b"host-x", b"1")]) is None
    assert refusal(raw_path, [(b"host", b"[::1]:9280")]) is None
    assert refusal(raw_path, [(b"host", b"search_es:9280")]) is None  # docker-compose names
    assert refusal(raw_path, [(b"host", b"es-node_1.internal")]) is None


def test_search_targets():
    assert search_target("GET", "/docs/_search") == "docs"
    assert search_target("POST", "/docs-*/_search") == "docs-*"
    assert search_target("PUT", "/docs/_search") is None
    assert search_target("POST", "/_search") is None
    assert search_target("POST", "/docs/_count") is None
    assert search_target("POST", "/docs/_search/template") is None
