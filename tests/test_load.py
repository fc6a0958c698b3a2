"""Concurrent clients sharing one Searcher, Reranker and encoders (the load benchmark, scaled down).

benchmarks/load.py is the long version (8 clients x 60 s, with the timing targets); here the
same loop runs 4 clients x 10 s against the session's nodes and checks what concurrency must
never change: no errors, every client served, and the answers of the single-threaded run.
"""

from __future__ import annotations

import threading

import pytest
from corpus_fixture import DOCS, QUERIES
from load_generator import (
    LoadConfig,
    LoadRun,
    Response,
    Sample,
    markdown,
    percentiles,
    run_load,
    search_rerank_request,
    summarize,
)

from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from splade_es.data.corpus import from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher

pytestmark = pytest.mark.load

CLIENTS = 4
SECONDS = 10.0


def sample(client, latency, error=None, phases=None):
    response = None if error else Response(("a",), (1.0,), phases or {"search": latency})
    return Sample(client, "q", 0.0, latency, response, error)


def test_percentiles_interpolate_between_ranks_and_empty_is_nan():
    p = percentiles([float(v) for v in range(1, 101)])
    assert (p.count, p.p50, p.max, p.mean) == (100, 50.5, 100.0, 50.5)
    assert p.p95 == pytest.approx(95.05) and p.p99 == pytest.approx(99.01)
    empty = percentiles([])
    assert empty.count == 0 and empty.p50 != empty.p50  # NaN


def test_summary_counts_errors_by_type_and_requests_per_client():
    samples = [
        sample(0, 10.0),
        sample(0, 20.0),
        sample(1, 30.0),
        sample(1, 99.0, "RuntimeError: Already borrowed"),
        sample(2, 5.0, "ClusterUnavailableError: no answer"),
        sample(2, 6.0, "RuntimeError: second"),
    ]
    summary = summarize(LoadRun(LoadConfig(clients=3, seconds=1.0), samples, 2.0))
    assert summary.requests == 6 and summary.errors == 3
    assert summary.errors_by_type == {"RuntimeError": 2, "ClusterUnavailableError": 1}
    assert summary.error_examples["RuntimeError"] == "RuntimeError: Already borrowed"
    assert summary.throughput == 1.5 and summary.per_client == [2, 1, 0]
    assert summary.latency.count == 3 and summary.latency.p50 == 20.0
    assert summary.phases["search"].max == 30.0
    assert summary.tail_ratio == pytest.approx(summary.latency.p95 / 20.0)
    table = markdown(summary)
    assert "| search + rerank | 3 |" in table and "| RuntimeError | 2 |" in table


def test_load_config_and_run_load_reject_bad_input():
    with pytest.raises(ValueError, match="clients=0: expected a positive integer"):
        LoadConfig(clients=0)
    with pytest.raises(ValueError, match="seconds=0: expected a positive duration"):
        LoadConfig(seconds=0)
    with pytest.raises(ValueError, match="queries is empty"):
        run_load(lambda q: Response((), (), {}), [], LoadConfig(clients=1, seconds=0.1))


def test_run_load_records_exceptions_and_cycles_queries_per_client():
    def request(query):
        if query == "bad":
            raise KeyError("boom")
        return Response((query,), (1.0,), {"work": 0.0})

    run = run_load(request, ["good", "bad", "other"], LoadConfig(clients=2, seconds=0.3))
    summary = summarize(run)
    assert summary.errors_by_type == {"KeyError": summary.errors} and summary.errors > 0
    first = {s.client: s.query for s in reversed(run.samples)}
    assert first == {0: "good", 1: "bad"}
    assert all(count > 0 for count in summary.per_client)


class PausingBackend:
    """A fast tokenizer's Rust backend that pauses the paused thread's first ``encode_batch``.

    The Python tokenizer applies its truncation and padding settings to the backend, then calls
    ``encode_batch``: the pause holds the paused thread exactly between the two, until another
    thread has tokenised (or ``seconds`` pass). An encoder that serialises tokenisation makes
    the other thread wait for the paused call instead.
    """

    def __init__(self, real: object, paused: int, seconds: float) -> None:
        vars(self).update(real=real, paused=paused, seconds=seconds, order=[])
        vars(self).update(inside=threading.Event(), other_done=threading.Event())

    def __getattr__(self, name: str) -> object:
        return getattr(vars(self)["real"], name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self.real, name, value)

    def encode_batch(self, *args: object, **kwargs: object) -> object:
        mine = threading.get_ident() == self.paused
        if mine and not self.inside.is_set():
            self.inside.set()
            self.other_done.wait(self.seconds)
        result = self.real.encode_batch(*args, **kwargs)
        self.order.append("paused" if mine else "other")
        if not mine:
            self.other_done.set()
        return result


def mixed_jobs(model, splade_encoder, colbert_encoder):
    """``(tokenizer, query job, document job)``: the query is longer than the query limit."""
    document = " ".join(["the subway carries millions of commuters every day"] * 40)
    query = " ".join(["aspirin heart attack risk"] * 30)
    if model == "splade":
        encoder = splade_encoder

        def first():
            batch = encoder.encode_queries([query])
            return batch.truncated, batch.vectors[0].ids.tolist()

        assert first()[0] == [True]
        return encoder.model.tokenizer, first, lambda: len(encoder.token_ids(document))
    # The zero-shot default gives queries and documents the same limit: set a query length.
    encoder = ColbertEncoder(ColbertConfig(colbert_encoder.config.model, "cpu", query_length=32))
    assert encoder.encode_queries([query])[0].shape[0] == 32
    return (
        encoder.tokenizer,
        lambda: encoder.encode_queries([query])[0].shape,
        lambda: encoder.encode_documents([document]).embeddings[0].shape,
    )


@pytest.mark.parametrize("model", ["splade", "colbert"])
def test_shared_encoders_do_not_tokenise_with_another_threads_settings(
    model, splade_encoder, colbert_encoder
):
    """The trap, forced: a fast tokenizer shared by threads keeps its truncation and padding
    settings on the shared backend. Thread A is paused after its settings are applied (query
    length) and before it tokenises; thread B then tokenises with its own settings (none, or
    the document length). Unguarded, B runs inside A's pause and A tokenises with B's settings
    (a long query is not truncated). The encoders' lock makes B wait for A instead."""
    tokenizer, first, second = mixed_jobs(model, splade_encoder, colbert_encoder)
    expected = (first(), second())
    go = threading.Event()
    results: dict[str, object] = {}

    def thread_a() -> None:
        go.wait(10)
        results["first"] = first()

    a = threading.Thread(target=thread_a)
    real = tokenizer._tokenizer
    a.start()
    backend = PausingBackend(real, paused=a.ident, seconds=1.5)
    tokenizer._tokenizer = backend
    try:
        go.set()
        assert backend.inside.wait(10), "thread A never reached the tokenizer backend"
        results["second"] = second()  # thread B (this one), started while A is paused
    finally:
        go.set()
        a.join()
        tokenizer._tokenizer = real
    assert (results["first"], results["second"]) == expected
    assert backend.order[0] == "paused", backend.order  # B's tokenisation waited for A's


def build(cluster, splade, colbert, name):
    storage = ColbertStorage(codec="residual", bits=2, centroids=32)
    config = BuildConfig(BulkConfig(index=name, progress=False))
    result = build_index(
        cluster, from_records(DOCS), splade, config, ColbertIndexing(colbert, storage)
    )
    assert result.report.indexed == len(DOCS)


def test_concurrent_search_and_rerank_match_the_single_threaded_answers(
    cluster, splade_encoder, colbert_encoder, index_names
):
    index = index_names(cluster)
    build(cluster, splade_encoder, colbert_encoder, index)
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    reranker = open_reranker(cluster, index, colbert_encoder)
    request = search_rerank_request(searcher, reranker, k=5, depth=len(DOCS))
    queries = [text for text, _ in QUERIES.values()]
    reference = {query: request(query) for query in queries}
    assert all(r.ids for r in reference.values()), reference

    run = run_load(request, queries, LoadConfig(clients=CLIENTS, seconds=SECONDS))
    summary = summarize(run)
    print(f"\n{cluster.engine} {cluster.version}\n{markdown(summary)}")  # timings: see benchmarks

    assert summary.errors == 0, summary.error_examples
    assert all(count > 0 for count in summary.per_client), summary.per_client
    for item in run.samples:
        assert item.response is not None
        want = reference[item.query]
        assert item.response.ids == want.ids, item.query
        assert item.response.scores == pytest.approx(want.scores, rel=1e-4, abs=1e-5)


def test_search_rerank_request_rejects_bad_depths():
    with pytest.raises(ValueError, match="k=0, depth=10: expected positive integers"):
        search_rerank_request(None, None, k=0, depth=10)  # type: ignore[arg-type]
