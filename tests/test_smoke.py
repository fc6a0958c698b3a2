"""Smoke tests: weighted terms indexed and scored exactly, through each engine's own client."""

from __future__ import annotations

import pytest

from splade_es.cluster.capabilities import probe

DOCS = {
    "d1": {"alpha": 1.5, "beta": 2.0},
    "d2": {"beta": 0.75, "gamma": 4.0},
    "d3": {"alpha": 0.5, "gamma": 1.0, "delta": 8.0},
}
QUERY = {"alpha": 2.0, "gamma": 0.25}
# Exact dot products (all weights are exact in the 9-bit mantissa the engines keep).
EXPECTED = {"d1": 3.0, "d3": 1.25, "d2": 1.0}


@pytest.mark.es
def test_elasticsearch_scores_are_exact_dot_products(es_cluster, es_node, index_names):
    from elasticsearch import Elasticsearch

    client = Elasticsearch(es_node.config.url)  # the official client, on its own
    index = index_names(es_cluster)
    caps = probe(es_cluster)
    field_type = "rank_features" if caps.rank_features else "sparse_vector"
    client.indices.create(index=index, mappings={"properties": {"w": {"type": field_type}}})
    for doc_id, weights in DOCS.items():
        client.index(index=index, id=doc_id, document={"w": weights})
    client.indices.refresh(index=index)
    if field_type == "rank_features":
        query = {
            "bool": {
                "should": [
                    {"rank_feature": {"field": f"w.{t}", "linear": {}, "boost": w}}
                    for t, w in QUERY.items()
                ]
            }
        }
    else:
        query = {"sparse_vector": {"field": "w", "query_vector": QUERY}}
    hits = client.search(index=index, query=query)["hits"]["hits"]
    assert {h["_id"]: h["_score"] for h in hits} == pytest.approx(EXPECTED, rel=1e-6)
    assert [h["_id"] for h in hits] == ["d1", "d3", "d2"]
    client.close()


@pytest.mark.opensearch
def test_opensearch_rank_feature_scores_are_exact_dot_products(
    opensearch_cluster, opensearch_node, index_names
):
    from opensearchpy import OpenSearch

    client = OpenSearch(hosts=[opensearch_node.config.url])
    index = index_names(opensearch_cluster)
    client.indices.create(
        index=index, body={"mappings": {"properties": {"w": {"type": "rank_features"}}}}
    )
    for doc_id, weights in DOCS.items():
        client.index(index=index, id=doc_id, body={"w": weights})
    client.indices.refresh(index=index)
    query = {
        "bool": {
            "should": [
                {"rank_feature": {"field": f"w.{t}", "linear": {}, "boost": w}}
                for t, w in QUERY.items()
            ]
        }
    }
    hits = client.search(index=index, body={"query": query})["hits"]["hits"]
    assert {h["_id"]: h["_score"] for h in hits} == pytest.approx(EXPECTED, rel=1e-6)
    assert [h["_id"] for h in hits] == ["d1", "d3", "d2"]
    client.close()


@pytest.mark.opensearch
def test_opensearch_painless_module_is_assembled(opensearch_cluster, index_names):
    index = index_names(opensearch_cluster)
    opensearch_cluster.request("PUT", f"/{index}/_doc/1", body={"x": 2}, params={"refresh": "true"})
    body = {
        "query": {
            "script_score": {
                "query": {"match_all": {}},
                "script": {"source": "doc['x'].value * params.f", "params": {"f": 1.5}},
            }
        }
    }
    hits = opensearch_cluster.request("POST", f"/{index}/_search", body=body)["hits"]["hits"]
    assert hits[0]["_score"] == pytest.approx(3.0)
