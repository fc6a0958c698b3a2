"""Evaluation reports: what is scored 0, what is left out and counted, parity in order, the
index name of a query subset, and the report fields (unit tests, then one run on a real node)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from corpus_fixture import DOCS, QUERIES, write_beir

from splade_es.cluster.names import check_index_name
from splade_es.evaluation import report as reports
from splade_es.evaluation.evaluator import EvalConfig, _run_stage, _stage_report, evaluate
from splade_es.evaluation.metrics import (
    retrieval_metrics,
    same_order_top_k,
    without_hits,
    without_positive,
)
from splade_es.evaluation.parity import top10_agreement
from splade_es.evaluation.selection import (
    SAMPLE_NOTE,
    default_index,
    id_sample,
    id_set_hash,
    select,
)
from splade_es.search.searcher import Hit

QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 2, "d9": 0}, "q0": {"d1": 0, "d2": 0}}


# -- metrics: a judged query without hits scores 0; one without a positive is left out ----------


def test_a_judged_query_missing_from_the_run_scores_zero():
    found = {"q1": {"d1": 2.0}, "q2": {"d2": 1.0}, "q3": {"d3": 1.0}}
    assert retrieval_metrics(QRELS, found)["ndcg@10"] == pytest.approx(1.0)
    missing = {"q1": {"d1": 2.0}, "q2": {"d2": 1.0}}  # q3 not in the run at all
    empty = {**missing, "q3": {}}  # q3 in the run without hits
    for run in (missing, empty):
        values = retrieval_metrics(QRELS, run)
        assert values["ndcg@10"] == pytest.approx(2 / 3)  # not 1.0: q3 counts, as 0
        assert values["mrr@10"] == pytest.approx(2 / 3)
        assert values["recall@100"] == pytest.approx(2 / 3)


def test_queries_without_a_positive_judgement_are_left_out_of_the_mean():
    run = {"q0": {"d1": 1.0}, "q1": {"d1": 1.0}, "q2": {"d2": 1.0}, "q3": {"d3": 1.0}}
    assert retrieval_metrics(QRELS, run)["ndcg@10"] == pytest.approx(1.0)  # q0 would be 0
    assert without_positive(QRELS) == ["q0"]
    assert without_hits(QRELS, {"q1": {"d1": 1.0}, "q2": {}, "q0": {}}) == ["q2", "q3"]


def test_metrics_refuse_qrels_without_positives_and_a_foreign_run():
    with pytest.raises(ValueError, match="None of the 1 queries of the qrels has a positive"):
        retrieval_metrics({"q0": {"d1": 0}}, {"q0": {"d1": 1.0}})
    with pytest.raises(ValueError, match=r"No query of the run .*run ids e\.g\. \['7'\]"):
        retrieval_metrics(QRELS, {"7": {"d1": 1.0}})
    assert retrieval_metrics(QRELS, {})["ndcg@10"] == 0.0  # nothing ran: every query is 0


# -- parity: the top 10 in order ------------------------------------------------------------------


def test_same_order_needs_the_exact_order_except_between_exact_ties():
    exact = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 1.0}
    assert same_order_top_k({"a": 9.0, "b": 8.0, "c": 7.0, "d": 6.0}, exact)
    assert same_order_top_k({"a": 9.0, "b": 8.0, "d": 7.0, "c": 6.0}, exact)  # c, d tied
    assert not same_order_top_k({"b": 9.0, "a": 8.0, "c": 7.0, "d": 6.0}, exact)
    assert not same_order_top_k({"a": 9.0, "b": 8.0, "c": 7.0}, exact)  # d missing
    assert not same_order_top_k({"a": 9.0, "b": 8.0, "c": 7.0, "x": 6.0}, exact)  # x not exact
    assert same_order_top_k({"a": 3.0, "b": 2.0}, exact, k=2)
    assert same_order_top_k({}, {})
    # engine ties keep the engine's order: b before a here, though both score 5
    assert not same_order_top_k({"b": 5.0, "a": 5.0}, {"a": 2.0, "b": 1.0})


def test_top10_agreement_counts_set_and_order_separately():
    exact = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"a": 2.0, "b": 1.0}, "q3": {"a": 1.0}}
    engine = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"b": 2.0, "a": 1.0}}  # q3 not answered
    assert top10_agreement(engine, exact, ["q1", "q2", "q3"]) == {
        "top10_identical_fraction": pytest.approx(2 / 3),
        "top10_same_order_fraction": pytest.approx(1 / 3),
    }
    with pytest.raises(ValueError, match="No query to compare"):
        top10_agreement(engine, exact, [])


# -- the index name of a cut corpus carries the query subset --------------------------------------


def test_a_cut_corpus_index_is_named_after_its_queries():
    dataset = Path("/data/SciFact")
    first = default_index(dataset, "rank_features", "ab12cd34", 300, ["1", "3", "5"])
    again = default_index(dataset, "rank_features", "ab12cd34", 300, ["5", "3", "1"])
    other = default_index(dataset, "rank_features", "ab12cd34", 300, ["1", "3", "7"])
    assert first == again != other
    assert first == f"eval-scifact-300docs-d{id_set_hash(['1', '3', '5'])}-rank-features-ab12cd34"
    assert check_index_name(first) == first
    full = default_index(dataset, "sparse_vector", "ab12cd34", None, ["1"])
    assert full == default_index(dataset, "sparse_vector", "ab12cd34", None, ["2", "3"])
    assert full == "eval-scifact-sparse-vector-ab12cd34"  # the full corpus serves any subset
    assert len(id_set_hash(["1"])) == 8 and id_set_hash(["1"]) != id_set_hash(["2"])


def test_id_sample_truncates_with_a_count():
    assert id_sample([]) == ""
    assert id_sample(["a", "b"], limit=2) == "a, b"
    assert id_sample([str(i) for i in range(25)]) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 (and 15 more)"


# -- selection: dropped records and unjudged queries counted, ids logged -------------------------


def _dataset(folder: Path) -> Path:
    """The fixture corpus plus three bad records, a query without a positive judgement and
    a judged query with empty text."""
    dataset = write_beir(folder)
    extra = [
        {"_id": "empty-1", "text": ""},
        {"_id": " ", "text": "a record with a blank id"},
        {"_id": "cook-1", "text": "a second record with an id already used"},
    ]
    with (dataset / "corpus.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in extra)
    with (dataset / "queries.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "q-none", "text": "glaciers"}) + "\n")
        handle.write(json.dumps({"_id": "q-empty", "text": ""}) + "\n")
    with (dataset / "qrels" / "test.tsv").open("a", encoding="utf-8") as handle:
        handle.write("q-none\tgeo-2\t0\nq-empty\tbio-1\t1\n")
    return dataset


def test_selection_counts_and_logs_what_it_leaves_out(tmp_path, caplog):
    dataset = _dataset(tmp_path / "tiny")
    with caplog.at_level(logging.WARNING, logger="splade_es.evaluation.selection"):
        chosen = select(dataset, "test", None, None)
    assert chosen.dropped_records == 3 and chosen.without_positive == ["q-none"]
    assert len(chosen.documents) == len(DOCS) and set(chosen.queries) == {*QUERIES, "q-empty"}
    assert "3 corpus records are invalid" in caplog.text and "empty-1 (" in caplog.text
    assert "duplicate id" in caplog.text
    assert "1 of the 6 judged queries have no positive judgement" in caplog.text
    assert "q-none" in caplog.text
    facts = chosen.facts(None)
    assert facts["corpus_records_dropped"] == 3 and facts["queries_without_positive"] == 1
    assert facts["scores_inflated_by_sample"] is False and "corpus_note" not in facts


def test_a_query_subset_cuts_the_corpus_to_its_judged_documents(tmp_path):
    dataset = _dataset(tmp_path / "tiny")
    chosen = select(dataset, "test", 2, 3)
    judged = {d for q in chosen.qrels.values() for d in q}
    assert len(chosen.queries) == 2 and judged <= {d.id for d in chosen.documents}
    assert len(chosen.documents) == 3
    facts = chosen.facts(2)
    assert facts["max_queries"] == 2 and facts["max_docs"] == 3
    assert facts["scores_inflated_by_sample"] is True and facts["corpus_note"] == SAMPLE_NOTE


def test_selection_refuses_qrels_without_any_positive(tmp_path):
    dataset = write_beir(tmp_path / "tiny")
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq-coffee\tcook-2\t0\n")
    with pytest.raises(ValueError, match=r"qrels/test\.tsv has no query with a positive"):
        select(dataset, "test", None, None)


# -- a stage: failed queries score 0 and are counted ----------------------------------------------


def _search(text: str) -> list[Hit]:
    if not text:
        raise ValueError("Query '' is empty: pass some words to search for.")
    return [] if text == "nothing" else [Hit("d1", 1.0, 1, {}, "i")]


def test_a_failed_query_scores_zero_and_is_counted(caplog):
    queries = {"q1": "found", "q2": "", "q3": "nothing"}
    qrels = {"q1": {"d1": 1}, "q2": {"d1": 1}, "q3": {"d1": 1}}
    with caplog.at_level(logging.WARNING, logger="splade_es.evaluation.evaluator"):
        stage_run = _run_stage("splade", _search, queries, progress=False)
        entry = _stage_report("splade", stage_run, qrels, {})
    assert stage_run.run == {"q1": {"d1": 1.0}, "q2": {}, "q3": {}}
    assert list(stage_run.failed) == ["q2"] and len(stage_run.latencies_ms) == 2
    assert entry["num_queries"] == 3 and entry["queries_failed"] == 1
    assert entry["queries_without_hits"] == 2 and entry["ndcg@10"] == pytest.approx(1 / 3)
    assert "splade: 1 of 3 queries failed and score 0: q2 (Query '' is empty" in caplog.text
    assert "splade: 2 of 3 judged queries have no hits and score 0: q2, q3" in caplog.text
    with pytest.raises(ValueError, match="Every query of stage bm25 failed: Query '' is empty"):
        _run_stage("bm25", _search, {"q1": "", "q2": ""}, progress=False)


# -- the markdown says what the json says ---------------------------------------------------------


def _report(data: dict[str, object]) -> dict[str, object]:
    stage = {"ndcg@10": 0.5, "num_queries": 4, "queries_without_hits": 1, "queries_failed": 0}
    return {
        "dataset": "tiny",
        "split": "test",
        "engine": "elasticsearch",
        "engine_version": "9.0.0",
        "mapping_type": "rank_features",
        "index": "eval-tiny",
        "index_docs": 10,
        "index_size_bytes": 1000,
        "model": "splade-tiny",
        "data": data,
        "stages": {"bm25": stage, "splade": {**stage, "queries_without_hits": 0}},
        "parity": {"top10_identical_fraction": 1.0, "top10_same_order_fraction": 0.75},
    }


def test_the_markdown_reports_counts_the_sample_and_order_parity(tmp_path):
    data = {
        "queries_evaluated": 4,
        "max_queries": 4,
        "queries_without_positive": 2,
        "corpus_records_dropped": 3,
        "max_docs": 10,
        "scores_inflated_by_sample": True,
        "corpus_note": SAMPLE_NOTE,
    }
    page = reports.markdown(_report(data))
    assert "4 judged queries evaluated (the first 4 by --max-queries)" in page
    assert "2 judged queries without a positive judgement left out" in page
    assert "3 corpus records dropped by validation" in page
    assert f"**Scores are inflated:** {SAMPLE_NOTE}" in page
    assert "- bm25: 1 of 4 judged queries returned no hits (0 failed) and score 0." in page
    assert "- splade:" not in page
    assert "| top10_same_order_fraction | 0.7500 |" in page
    full = reports.markdown(_report({**data, "max_docs": None, "scores_inflated_by_sample": False}))
    assert "inflated" not in full
    older = _report(data)
    del older["data"]
    assert reports.markdown(older).startswith("# tiny (test)")  # a report from before


# -- one run through a real node ------------------------------------------------------------------


@pytest.mark.es
def test_evaluate_reports_what_it_left_out(es_cluster, splade_encoder, index_names, tmp_path):
    dataset = _dataset(tmp_path / "tiny")
    config = EvalConfig(
        dataset=dataset,
        max_docs=6,
        check_exact=True,
        index=index_names(es_cluster),
        progress=False,
    )
    result = evaluate(es_cluster, splade_encoder, config)
    assert result["index_docs"] == 6  # 5 judged documents plus 1 other
    assert result["data"]["corpus_records_dropped"] == 3
    assert result["data"]["queries_without_positive"] == 1
    assert result["data"]["queries_evaluated"] == 5
    assert result["data"]["scores_inflated_by_sample"] is True
    for stage in ("bm25", "splade"):
        values = result["stages"][stage]
        assert values["num_queries"] == 5 and values["queries_failed"] == 1  # q-empty
        assert values["queries_without_hits"] >= 1  # bm25 may also miss a query outright
    assert result["stages"]["splade"]["queries_without_hits"] == 1
    assert result["stages"]["splade"]["ndcg@10"] == pytest.approx(0.8)  # q-empty scores 0
    parity = result["parity"]
    for label in ("", "_stored_precision"):
        same_set = parity[f"top10_identical_fraction{label}"]
        assert 0.0 <= parity[f"top10_same_order_fraction{label}"] <= same_set <= 1.0
    page = reports.markdown(result)
    assert "**Scores are inflated:**" in page and "3 corpus records dropped" in page
