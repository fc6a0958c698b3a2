"""The bulk pipeline against the real nodes: counts, contents, dead letters, faults, resume."""

from __future__ import annotations

import json

import pytest
from faults import Fault, inject

from splade_es.cluster.admin import index_stats
from splade_es.data.corpus import Document, FieldNames, Limits, from_records
from splade_es.indexing.bulk import BulkConfig, BulkFailedError, BulkStoppedError, index_documents
from splade_es.indexing.splade_fields import SpladeFields, prepare_index

NO_WAIT = {"sleep": lambda seconds: None}


def make_index(cluster, encoder, name):
    prepare_index(cluster, encoder, name)
    return name


def docs(n, prefix="d"):
    return [Document(f"{prefix}{i}", f"document number {i} about topic {i % 7}") for i in range(n)]


def stored(cluster, index, ids):
    result = cluster.request(
        "POST", f"/{index}/_mget", body={"ids": ids}, params={"_source_includes": "text"}
    )
    return {d["_id"]: d["_source"]["text"] for d in result["docs"] if d.get("found")}


def test_everything_lands_and_bad_input_is_reported(cluster, splade_encoder, index_names, tmp_path):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    records = [
        {"_id": "a", "text": "first"},
        {"_id": "b", "text": "   "},
        {"_id": "a", "text": "duplicate of a"},
        {"text": "no id"},
        {"_id": "c", "text": 12},
        {"_id": "d", "text": "x" * 2000},
        {"_id": "e", "text": "Der Bär aß Äpfel — 東京 ☃"},
    ]
    dead = tmp_path / "dead.jsonl"
    config = BulkConfig(index=index, dead_letter=dead, progress=False)
    with pytest.raises(BulkFailedError, match=r"5 document\(s\) were not indexed") as caught:
        index_documents(
            cluster,
            from_records(records, FieldNames(), Limits(1000)),
            [SpladeFields(splade_encoder)],
            config,
        )
    report = caught.value.report
    assert report.indexed == 2
    assert index_stats(cluster, index)[0] == 2
    assert stored(cluster, index, ["a", "e"]) == {"a": "first", "e": "Der Bär aß Äpfel — 東京 ☃"}
    lines = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(f["id"], f["error_type"]) for f in lines] == [
        ("b", "invalid_document"),
        ("a", "duplicate_id"),
        ("<position 3>", "invalid_document"),
        ("c", "invalid_document"),
        ("d", "invalid_document"),
    ]
    assert "over the 1000-byte limit" in lines[-1]["reason"]


def test_mapping_errors_from_the_engine_are_dead_lettered(
    cluster, splade_encoder, index_names, tmp_path
):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    cluster.request("PUT", f"/{index}/_mapping", body={"properties": {"year": {"type": "integer"}}})
    records = [
        {"_id": "ok", "text": "fine", "year": 2020},
        {"_id": "bad", "text": "fine", "year": "not a year"},
    ]
    config = BulkConfig(
        index=index, dead_letter=tmp_path / "dead.jsonl", raise_on_failure=False, progress=False
    )
    report = index_documents(
        cluster,
        from_records(records, FieldNames(keep=("year",))),
        [SpladeFields(splade_encoder)],
        config,
    )
    assert report.indexed == 1 and [f.id for f in report.failures] == ["bad"]
    assert report.failures[0].status == 400
    assert report.failures[0].error_type in (
        "document_parsing_exception",
        "mapper_parsing_exception",
    )


def test_rerun_is_idempotent(cluster, splade_encoder, index_names):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    config = BulkConfig(index=index, chunk_docs=7, progress=False)
    for _ in range(2):
        report = index_documents(cluster, docs(20), [SpladeFields(splade_encoder)], config)
        assert report.indexed == 20
    assert index_stats(cluster, index)[0] == 20


@pytest.mark.parametrize("kind", ["503", "reset", "timeout"])
def test_transient_failures_are_retried(cluster, splade_encoder, index_names, kind):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    config = BulkConfig(index=index, chunk_docs=10, progress=False)

    def plan(call, ids):  # calls 1 and 3 fail before reaching the node
        return Fault(kind=kind) if call in (1, 3) else None

    with inject(cluster, plan) as recorder:
        report = index_documents(
            cluster, docs(30), [SpladeFields(splade_encoder)], config, **NO_WAIT
        )
    assert report.indexed == 30 and report.failures == []
    assert len(recorder.calls) == 5  # 3 chunks + 2 retries
    assert recorder.calls[0] == recorder.calls[1]  # the whole failed chunk is re-sent
    assert index_stats(cluster, index)[0] == 30
    assert len(stored(cluster, index, [f"d{i}" for i in range(30)])) == 30


def test_a_429_halves_the_requests_and_success_grows_them_back(
    cluster, splade_encoder, index_names
):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    config = BulkConfig(index=index, chunk_docs=16, encode_batch=16, progress=False)

    def plan(call, ids):  # the first two requests are refused as a whole
        return Fault(kind="429") if call <= 2 else None

    with inject(cluster, plan) as recorder:
        report = index_documents(
            cluster, docs(48), [SpladeFields(splade_encoder)], config, **NO_WAIT
        )
    sizes = [len(c) for c in recorder.calls]
    assert sizes[:4] == [16, 8, 4, 6]  # halved twice, then +chunk_docs/8 per clean request
    assert max(sizes[4:]) >= 10  # and keep growing while nothing is refused
    assert report.indexed == 48 and report.throttled_requests == 2
    assert report.smallest_chunk_docs == 4
    assert index_stats(cluster, index)[0] == 48


def test_only_rejected_documents_are_resent(cluster, splade_encoder, index_names):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    config = BulkConfig(index=index, chunk_docs=10, progress=False)
    rejected = {"d2", "d5", "d7"}

    def plan(call, ids):
        return Fault(reject=rejected) if call == 1 else None

    with inject(cluster, plan) as recorder:
        report = index_documents(
            cluster, docs(10), [SpladeFields(splade_encoder)], config, **NO_WAIT
        )
    assert [len(c) for c in recorder.calls] == [10, 3]
    assert set(recorder.calls[1]) == rejected
    assert report.indexed == 10 and report.retried_documents == 3
    assert index_stats(cluster, index)[0] == 10


def test_sustained_rejections_stop_the_run_without_dead_lettering(
    cluster, splade_encoder, index_names, tmp_path
):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    dead = tmp_path / "dead.jsonl"
    config = BulkConfig(
        index=index,
        chunk_docs=5,
        max_attempts=3,
        dead_letter=dead,
        raise_on_failure=False,
        progress=False,
    )

    with (
        inject(cluster, lambda call, ids: Fault(reject={"d1"})) as recorder,
        pytest.raises(BulkStoppedError, match="kept rejecting documents") as caught,
    ):
        index_documents(cluster, docs(5), [SpladeFields(splade_encoder)], config, **NO_WAIT)
    assert len(recorder.calls) == 3
    assert caught.value.report.indexed == 4 and caught.value.unsent == 1
    assert caught.value.report.failures == [] and not dead.exists()  # d1 is not to blame


def test_a_cluster_that_stays_down_stops_the_run_with_a_resumable_error(
    cluster, splade_encoder, index_names, tmp_path
):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    checkpoint = tmp_path / "ck.tsv"
    config = BulkConfig(
        index=index, chunk_docs=10, max_attempts=3, checkpoint=checkpoint, progress=False
    )

    def plan(call, ids):
        return Fault(kind="reset") if call >= 2 else None

    with (
        inject(cluster, plan),
        pytest.raises(BulkStoppedError, match="re-run with the same --checkpoint") as caught,
    ):
        index_documents(cluster, docs(30), [SpladeFields(splade_encoder)], config, **NO_WAIT)
    assert "no answer from" in str(caught.value)
    assert len(checkpoint.read_text().splitlines()) == 10  # the first chunk landed

    class Counting(SpladeFields):
        seen = 0

        def encode(self, documents):
            Counting.seen += len(documents)
            return super().encode(documents)

    report = index_documents(cluster, docs(30), [Counting(splade_encoder)], config, **NO_WAIT)
    assert report.skipped == 10 and report.indexed == 20
    assert Counting.seen == 20  # nothing that had landed was encoded again
    assert index_stats(cluster, index)[0] == 30


def test_interrupted_run_resumes_from_the_checkpoint(
    cluster, splade_encoder, index_names, tmp_path
):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    checkpoint = tmp_path / "ck.tsv"
    config = BulkConfig(
        index=index, chunk_docs=10, encode_batch=10, checkpoint=checkpoint, progress=False
    )

    def interrupted():
        yield from docs(25)
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while reading the corpus

    with pytest.raises(KeyboardInterrupt):
        index_documents(cluster, interrupted(), [SpladeFields(splade_encoder)], config)
    landed = len(checkpoint.read_text().splitlines())
    assert 0 < landed <= 25
    report = index_documents(cluster, docs(40), [SpladeFields(splade_encoder)], config)
    assert report.skipped == landed and report.encoded == 40 - landed
    assert index_stats(cluster, index)[0] == 40


def test_changed_documents_are_not_skipped(cluster, splade_encoder, index_names, tmp_path):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    config = BulkConfig(index=index, checkpoint=tmp_path / "ck.tsv", progress=False)
    index_documents(cluster, docs(5), [SpladeFields(splade_encoder)], config)
    changed = [*docs(4), Document("d4", "a new text for d4")]
    report = index_documents(cluster, changed, [SpladeFields(splade_encoder)], config)
    assert report.skipped == 4 and report.indexed == 1
    assert stored(cluster, index, ["d4"]) == {"d4": "a new text for d4"}


def test_chunks_are_cut_by_bytes(cluster, splade_encoder, index_names):
    index = make_index(cluster, splade_encoder, index_names(cluster))
    config = BulkConfig(index=index, chunk_docs=500, chunk_bytes=3_000, progress=False)
    with inject(cluster, lambda call, ids: None) as recorder:
        report = index_documents(cluster, docs(12), [SpladeFields(splade_encoder)], config)
    assert report.indexed == 12
    assert len(recorder.calls) > 1 and sum(len(c) for c in recorder.calls) == 12


def test_bulk_config_validation():
    with pytest.raises(ValueError, match="chunk_docs=0"):
        BulkConfig(index="x", chunk_docs=0)
    with pytest.raises(ValueError, match="min_chunk_docs=20 is above chunk_docs=10"):
        BulkConfig(index="x", chunk_docs=10, min_chunk_docs=20)
    with pytest.raises(ValueError, match="expected 0 <= initial <= max"):
        BulkConfig(index="x", initial_backoff_s=5, max_backoff_s=1)


@pytest.mark.es
def test_a_checkpoint_line_cut_by_a_kill_is_ignored_and_not_glued_to(
    es_cluster, splade_encoder, index_names, tmp_path
):
    index = make_index(es_cluster, splade_encoder, index_names(es_cluster))
    checkpoint = tmp_path / "ck.tsv"
    checkpoint.write_text('"d0"\t' + "0" * 16 + '\n"d1"\t12')  # killed while writing d1's line
    config = BulkConfig(index=index, checkpoint=checkpoint, progress=False)
    report = index_documents(es_cluster, docs(3), [SpladeFields(splade_encoder)], config)
    assert report.skipped == 0 and report.indexed == 3  # d0's digest differs: encoded again
    lines = checkpoint.read_text().splitlines()
    assert lines[:2] == ['"d0"\t' + "0" * 16, '"d1"\t12']
    assert sorted(json.loads(line.split("\t")[0]) for line in lines[2:]) == ["d0", "d1", "d2"]
    again = index_documents(es_cluster, docs(3), [SpladeFields(splade_encoder)], config)
    assert again.skipped == 3 and again.encoded == 0
