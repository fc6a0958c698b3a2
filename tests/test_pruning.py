"""Search-time query pruning, shard reports and routed bulk actions: pure parts."""

from __future__ import annotations

import numpy as np
import pytest
from scale_synthetic import Packed, Recipe, generate_vectors

from splade_es.data.corpus import Document
from splade_es.encoding.features import SparseVector
from splade_es.indexing.queue import index_action
from splade_es.search.config import SearchConfig
from splade_es.search.pruning import (
    AUTO_FROM_DOCUMENTS,
    AUTO_PRUNING,
    QueryPruning,
    auto_pruning,
    parse_pruning,
    rescore_clause,
)
from splade_es.search.results import Hit, Hits, ShardReport

VECTOR = SparseVector(
    np.array([5, 1, 9, 3], dtype=np.int64), np.array([0.5, 2.0, 0.1, 1.0], dtype=np.float32)
)


def ids(vector: SparseVector) -> list[int]:
    return [int(i) for i in vector.ids]


def test_no_policy_keeps_every_term_by_weight():
    split = QueryPruning().split(VECTOR)
    assert ids(split.kept) == [1, 3, 5, 9]
    assert len(split.dropped) == 0 and not split.rescores


def test_top_k_and_weight_ratio_combine():
    assert ids(QueryPruning(top_k=2).split(VECTOR).kept) == [1, 3]
    split = QueryPruning(weight_ratio=0.25).split(VECTOR)
    assert ids(split.kept) == [1, 3, 5] and ids(split.dropped) == [9]
    assert ids(QueryPruning(top_k=1, weight_ratio=0.01).split(VECTOR).kept) == [1]


def test_df_ratio_drops_common_terms_with_the_given_shares():
    shares = {1: 0.9, 3: 0.05, 5: 0.2, 9: 0.01}

    def share(term_ids):
        return np.array([shares[int(i)] for i in term_ids])

    split = QueryPruning(df_ratio=0.1).split(VECTOR, share)
    assert ids(split.kept) == [3, 9] and ids(split.dropped) == [1, 5]
    with pytest.raises(ValueError, match="document frequencies"):
        QueryPruning(df_ratio=0.1).split(VECTOR)


def test_the_largest_term_survives_a_policy_that_drops_everything():
    split = QueryPruning(df_ratio=0.01).split(VECTOR, lambda t: np.ones(len(t)))
    assert ids(split.kept) == [1] and len(split.dropped) == 3


def test_two_phase_rescores_only_with_dropped_terms():
    split = QueryPruning(top_k=2, rescore_window=50).split(VECTOR)
    assert split.rescores and ids(split.dropped) == [5, 9]
    assert not QueryPruning(top_k=9, rescore_window=50).split(VECTOR).rescores
    clause = rescore_clause({"match_all": {}}, 50)
    assert clause["window_size"] == 50
    assert clause["query"]["score_mode"] == "total"
    assert clause["query"]["query_weight"] == clause["query"]["rescore_query_weight"] == 1.0


def test_parse_round_trips_and_names_bad_specs():
    policy = parse_pruning("weight=0.2,rescore=200")
    assert policy == QueryPruning(weight_ratio=0.2, rescore_window=200)
    assert parse_pruning(policy.name) == policy
    assert parse_pruning("none") == QueryPruning() and QueryPruning().name == "none"
    assert parse_pruning("top_k=5,df=0.3").name == "top_k=5,df=0.3"
    with pytest.raises(ValueError, match="'bogus=1' is not KEY=VALUE"):
        parse_pruning("bogus=1")
    with pytest.raises(ValueError, match="twice"):
        parse_pruning("top_k=3,top_k=4")
    with pytest.raises(ValueError, match="top_k='x' is not a number"):
        parse_pruning("top_k=x")
    with pytest.raises(ValueError, match="rescores nothing"):
        parse_pruning("rescore=100")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"top_k": 0}, "top_k=0"),
        ({"top_k": True}, "top_k=True"),
        ({"weight_ratio": 1.5}, r"weight_ratio=1.5: expected a number in \(0, 1\]"),
        ({"df_ratio": 0}, "df_ratio=0"),
        ({"weight_ratio": float("nan")}, "weight_ratio=nan"),
    ],
)
def test_bad_policies_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        QueryPruning(**values)


def test_auto_is_exact_on_small_indices_and_two_phase_on_large_ones():
    assert parse_pruning("auto") == "auto" and SearchConfig("docs").pruning == "auto"
    assert auto_pruning(AUTO_FROM_DOCUMENTS - 1) == QueryPruning()
    assert (
        auto_pruning(AUTO_FROM_DOCUMENTS) == AUTO_PRUNING == parse_pruning("weight=0.3,rescore=400")
    )


def test_search_config_checks_its_choices():
    with pytest.raises(ValueError, match="search_type='dfs'"):
        SearchConfig("docs", search_type="dfs")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pruning='top_k=3'"):
        SearchConfig("docs", pruning="top_k=3")  # type: ignore[arg-type]


def test_shard_report_of_a_partial_answer():
    answer = {
        "timed_out": False,
        "_shards": {
            "total": 3,
            "successful": 2,
            "skipped": 0,
            "failed": 1,
            "failures": [
                {"shard": 2, "reason": {"type": "no_shard_available_action_exception"}},
            ],
        },
    }
    report = ShardReport.of(answer)
    assert report.partial and report.failed == 1
    assert report.summary == (
        "1 of 3 shards did not answer (shard 2: no_shard_available_action_exception)"
    )
    complete = ShardReport.of({"_shards": {"total": 3, "successful": 3, "failed": 0}})
    assert not complete.partial
    assert complete.worst(report) is report and report.worst(complete) is report


def test_hits_are_a_list_with_a_shard_report():
    hit = Hit("d1", 1.0, 1, {}, "docs")
    hits = Hits([hit], ShardReport(total=1, successful=1), pruned_terms=2)
    assert hits == [hit] and hits[:1] == [hit] and hits.pruned_terms == 2
    assert not hits.shards.partial and not Hits().shards.partial


def test_routed_action_and_a_document_without_routing():
    document = Document("d1", "text", fields={"tenant": "acme"})
    action = index_action(document, {"splade": {"a": 1.0}}, "docs", "tenant")
    assert action["routing"] == "acme" and action["_id"] == "d1"
    assert "routing" not in index_action(document, {}, "docs")
    with pytest.raises(ValueError, match="routing field 'tenant' = None"):
        index_action(Document("d2", "text"), {}, "docs", "tenant")


def test_synthetic_vectors_keep_lengths_and_prefixes():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 20, size=50)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    real_ids = np.concatenate([rng.choice(200, size=n, replace=False) for n in lengths])
    real = Packed(offsets, real_ids.astype(np.int64), rng.random(offsets[-1]).astype(np.float32))
    recipe = Recipe(keep=0.5, seed=3)
    chunks = list(generate_vectors(real, 200, 60, recipe, chunk=20))
    smaller = list(generate_vectors(real, 200, 20, recipe, chunk=20))
    assert np.array_equal(chunks[0][1].ids, smaller[0][1].ids)  # a prefix is the smaller corpus
    for _, packed, templates in chunks:
        assert np.array_equal(packed.lengths(), lengths[templates])
        for i in range(len(packed)):
            term_ids, _ = packed.vector(i)
            assert len(np.unique(term_ids)) == len(term_ids)


def test_routing_field_must_be_a_kept_field(tmp_path):
    from cli_runner import cli
    from corpus_fixture import write_jsonl

    corpus = write_jsonl(tmp_path / "docs.jsonl")
    url = ["--es-url", "http://127.0.0.1:9", "--engine", "elasticsearch"]
    result = cli("index", str(corpus), "--index", "docs", "--routing-field", "tenant", *url)
    assert result.returncode == 2
    assert "--routing-field 'tenant' is not a kept field" in result.stderr
    assert "add --keep-field tenant" in result.stderr


def test_skipped_shards_count_as_answered():
    skipped = ShardReport.of({"_shards": {"total": 5, "successful": 5, "skipped": 2, "failed": 0}})
    assert not skipped.partial
    failed = ShardReport.of({"_shards": {"total": 5, "successful": 4, "skipped": 2, "failed": 1}})
    assert failed.partial and failed.summary.startswith("1 of 5 shards")


def test_node_urls_are_split_and_an_empty_entry_is_named():
    from splade_es.cluster.config import ClusterConfig, redact_url

    config = ClusterConfig(url="http://a:9200, http://b:9201")
    assert config.urls == ("http://a:9200", "http://b:9201")
    with pytest.raises(ValueError, match="has an empty entry"):
        ClusterConfig(url="http://a:9200,")
    assert redact_url("http://u:p@a:1,http://b:2") == "http://***@a:1,http://b:2"
