"""Bad input, generated (hypothesis): records, queries and hits through validation, encoding,
bulk, search and rerank.

Properties: only the package's documented errors come out (``ValueError``/``TypeError``,
:class:`RerankError`, per-document failures in the bulk report), every input is accounted
for exactly once, and nothing indexed or returned differs from its input. Valid and invalid
queries come from separate strategies (``fuzz_strategies``): valid ones must go through,
invalid ones must be refused with an error that names them.

Sizes scale with ``FUZZ_SCALE`` (default 1, the CI size; ``benchmarks/fuzz_long.py`` runs
more). Counts are kept per stage (generated, rejected with an error, encoded, distinct
encoded, searched per engine, reranked), printed at the end of the module and written to the
JSON file ``FUZZ_COUNTS_FILE`` names, if set. Only inputs that reached a stage count for it.
Runs are derandomised, so CI is reproducible.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from corpus_fixture import DOCS
from fuzz_strategies import (
    BLANK,
    CHARS,
    INVALID_TEXTS,
    JSON_VALUES,
    NOT_TEXT,
    RECORD_TEXTS,
    WRONG,
    enormous,
    record_batches,
    texts,
    valid_queries,
    weighted,
)
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from colbert_rerank.codecs import Codec
from colbert_rerank.maxsim import maxsim_reference
from colbert_rerank.rerank import RerankConfig, Reranker, RerankError
from splade_es.cluster.connection import ClusterError
from splade_es.data.corpus import (
    Document,
    FieldNames,
    Limits,
    Rejected,
    from_records,
    make_document,
)
from splade_es.encoding.features import SparseVector, lucene_stored
from splade_es.indexing.bulk import BulkConfig, index_documents
from splade_es.indexing.queue import Encoded, Failure, Producer
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.search.searcher import SearchConfig, Searcher

pytestmark = pytest.mark.fuzz

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
COUNTS: Counter[str] = Counter()
"""Inputs per stage, keyed ``group.stage[.engine].outcome`` (nested in the JSON file)."""
DISTINCT: defaultdict[str, set[Any]] = defaultdict(set)
"""The inputs themselves per stage, to count distinct ones (hypothesis may repeat one)."""
NAMES = FieldNames(keep=("meta", "year"))
LIMITS = Limits(max_text_bytes=150_000)


def examples(n: int) -> int:
    return max(1, round(n * SCALE))


def fuzz_settings(n: int) -> Any:
    return settings(
        max_examples=examples(n),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # shrinking huge inputs takes minutes
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


def tally(key: str, inputs: Iterable[Any] = (), n: int | None = None) -> None:
    """Add ``inputs`` (or ``n``) to ``key``; ``inputs`` also go to ``key``'s distinct set."""
    items = list(inputs)
    COUNTS[key] += len(items) if n is None else n
    if items:
        DISTINCT[key].update(items)


def counts_tree() -> dict[str, Any]:
    """``COUNTS`` nested on the dots, with ``distinct_<outcome>`` beside each counted set."""
    flat: dict[str, int] = dict(COUNTS)
    for key, values in DISTINCT.items():
        group, _, outcome = key.rpartition(".")
        flat[f"{group}.distinct_{outcome}"] = len(values)
    tree: dict[str, Any] = {}
    for key, value in sorted(flat.items()):
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    flat = {**COUNTS, **{k + " (distinct)": len(v) for k, v in DISTINCT.items()}}
    line = "fuzz cases: " + ", ".join(f"{k}={v}" for k, v in sorted(flat.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + line)
    target = os.environ.get("FUZZ_COUNTS_FILE")
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump({"scale": SCALE, "counts": counts_tree()}, handle, indent=2)


# -- records: validation + encoding (no cluster) ---------------------------------------------


def run_producer(batch: list[Any], fields: SpladeFields) -> list[Encoded | Failure]:
    producer = Producer(from_records(batch, NAMES, LIMITS), [fields], "fuzz", 32, 4)
    producer.start()
    try:
        return list(producer.results())
    finally:
        producer.stop()


def expected_outcomes(batch: list[Any]) -> list[tuple[str, str]]:
    """``(outcome, id)`` per record: ``ok``, ``duplicate_id`` or ``invalid_document``, with
    the id the report must name. Checked here independently where the rule is simple."""
    seen: set[str] = set()
    out = []
    for position, raw in enumerate(batch):
        built = make_document(raw, position, NAMES, LIMITS)
        raw_id = raw.get("_id") if isinstance(raw, dict) else None
        readable = not isinstance(raw_id, bool) and isinstance(raw_id, str | int)
        if readable and str(raw_id).strip() and len(str(raw_id)) < 60:
            assert built.id == str(raw_id), (raw, built)
        elif not readable:
            assert built.id == f"<position {position}>", (raw, built)
        if isinstance(built, Rejected):
            assert built.reason
            out.append(("invalid_document", built.id))
            continue
        assert isinstance(raw, dict) and readable, raw
        assert isinstance(raw["text"], str) and raw["text"].encode("utf-8") is not None, raw
        assert raw["text"].strip() or str(raw.get("title") or "").strip(), raw
        out.append(("duplicate_id" if built.id in seen else "ok", built.id))
        seen.add(built.id)
    return out


def check_accounting(batch: list[Any], results: list[Encoded | Failure], vocabulary: Any) -> None:
    assert len(results) == len(batch)  # every input exactly once
    expected = expected_outcomes(batch)
    failures = Counter((r.id, r.error_type) for r in results if isinstance(r, Failure))
    assert failures == Counter((i, outcome) for outcome, i in expected if outcome != "ok")
    assert all(r.stage == "input" and r.reason for r in results if isinstance(r, Failure))
    encoded = {r.document.id: r for r in results if isinstance(r, Encoded)}
    originals = {
        i: raw for (outcome, i), raw in zip(expected, batch, strict=True) if outcome == "ok"
    }
    assert set(encoded) == set(originals)
    for doc_id, result in encoded.items():
        raw, source = originals[doc_id], result.action["_source"]
        assert result.action["_id"] == doc_id == str(raw["_id"])
        assert source["text"] == raw["text"]  # stored exactly as given
        assert source.get("title", "") == (raw.get("title") or "")
        for name in NAMES.keep:
            assert source.get(name, "absent") == raw.get(name, "absent")
        # The client serialises this: it must be strict JSON, valid UTF-8.
        json.dumps(result.action, allow_nan=False, ensure_ascii=False).encode("utf-8")
        features = source["splade"]
        assert all(key in vocabulary.ids for key in features)
        assert all(math.isfinite(v) and v > 0 for v in features.values())
    stored = [r.action["_source"] for r in encoded.values()]
    tally("documents.records.encoded", [(s.get("title") or "", s["text"]) for s in stored])
    tally("documents.records.rejected_with_reason", n=len(batch) - len(encoded))


@fuzz_settings(12)
@given(batch=record_batches(RECORD_TEXTS, 50, 100))
@example(batch=[{"_id": "a", "text": 10**5000}, {"_id": "b", "text": "x", "meta": [float("nan")]}])
@example(batch=[{"_id": 10**600, "text": "x"}, {"_id": "c", "text": "x", "meta": {"k": {1: 2}}}])
def test_every_record_is_encoded_or_rejected_with_a_reason(splade_encoder, batch):
    results = run_producer(batch, SpladeFields(splade_encoder))
    tally("documents.records.generated", n=len(batch))
    check_accounting(batch, results, splade_encoder.vocabulary)


def test_deeply_nested_and_unserialisable_fields_are_rejected(splade_encoder):
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    batch = [
        {"_id": "deep", "text": "x", "meta": deep},
        {"_id": "set", "text": "x", "meta": {"a": {1, 2}}},
        {"_id": "bytes", "text": "x", "year": b"2020"},
        {"_id": "intkey", "text": "x", "meta": {1: "one"}},
        {"_id": "inf", "text": "x", "year": float("inf")},
        {"_id": "huge", "text": deep},
        {"_id": "fine", "text": "x", "meta": {"a": [1, None, {"b": "ü"}]}},
    ]
    results = run_producer(batch, SpladeFields(splade_encoder))
    reasons = {r.id: r.reason for r in results if isinstance(r, Failure)}
    assert set(reasons) == {"deep", "set", "bytes", "intkey", "inf", "huge"}
    assert "deeper than 100 levels" in reasons["deep"]
    assert "set" in reasons["set"] and "bytes" in reasons["bytes"]
    assert "key int 1" in reasons["intkey"] and "inf" in reasons["inf"]
    assert "too large to show" in reasons["huge"]


def test_a_jsonl_line_nested_too_deeply_is_rejected_not_raised(tmp_path):
    from splade_es.data.readers import read_jsonl

    path = tmp_path / "deep.jsonl"
    path.write_text('{"_id": "a", "text": "ok"}\n' + "[" * 100_000 + "\n", encoding="utf-8")
    out = list(read_jsonl(path))
    assert isinstance(out[0], Document)
    assert isinstance(out[1], Rejected) and "nests JSON too deeply" in out[1].reason


# -- records: bulk into the real nodes, read back ---------------------------------------------


@fuzz_settings(5)
@given(
    batch=record_batches(texts(enormous(100_000, 110_000)), 20, 40),
    data=st.data(),
)
def test_bulk_accounts_for_every_record_and_stores_them_unchanged(
    cluster, splade_encoder, index_names, tmp_path_factory, batch, data
):
    stage = f"documents.bulk.{cluster.engine}"
    index = index_names(cluster, f"b{COUNTS[stage + '.batches']}")
    tally(stage + ".batches", n=1)
    tally(stage + ".generated", n=len(batch))
    prepare_index(cluster, splade_encoder, index)
    dead = tmp_path_factory.mktemp("dead") / "dead.jsonl"
    chunk = data.draw(st.integers(1, 25), label="chunk_docs")
    config = BulkConfig(
        index=index, dead_letter=dead, raise_on_failure=False, progress=False, chunk_docs=chunk
    )
    report = index_documents(
        cluster, from_records(batch, NAMES, LIMITS), [SpladeFields(splade_encoder)], config
    )
    outcomes = [outcome for outcome, _ in expected_outcomes(batch)]
    assert report.indexed + report.failed == len(batch) and report.skipped == 0
    text = dead.read_text(encoding="utf-8") if dead.exists() else ""
    lines = [json.loads(line) for line in text.splitlines()]  # str.splitlines: the strictest
    assert [(f["id"], f["reason"]) for f in lines] == [(f.id, f.reason) for f in report.failures]
    assert all(f.reason and f.id for f in report.failures)
    expected_input = [o for o in outcomes if o != "ok"]
    assert [f.error_type for f in report.failures if f.stage == "input"] == expected_input
    # What the engine refused (a mapping conflict between the generated "year"/"meta" values)
    # is a per-document 400 with the engine's reason, never a crash.
    refused = {f.id for f in report.failures if f.stage == "index"}
    assert all(f.status == 400 for f in report.failures if f.stage == "index")
    accepted = {
        str(raw["_id"]): raw
        for raw, outcome in zip(batch, outcomes, strict=True)
        if outcome == "ok" and str(raw["_id"]) not in refused
    }
    assert report.indexed == len(accepted)
    count = cluster.request("GET", f"/{index}/_count")["count"]
    assert count == report.indexed
    if accepted:
        got = cluster.request("POST", f"/{index}/_mget", body={"ids": list(accepted)})
        for doc in got["docs"]:
            raw, source = accepted[doc["_id"]], doc["_source"]
            assert doc["found"] and source["text"] == raw["text"]
            assert source.get("title", "") == (raw.get("title") or "")
            for name in NAMES.keep:
                assert source.get(name, "absent") == raw.get(name, "absent")
    tally(stage + ".rejected_with_reason", n=len(expected_input))
    tally(stage + ".refused_by_engine_with_reason", n=len(refused))
    tally(stage + ".indexed", [(r.get("title") or "", r["text"]) for r in accepted.values()])


# -- queries ------------------------------------------------------------------------------

QUERY_BATCH = min(100, examples(10))
"""Queries per encoder batch: 10 in CI, 100 from scale 10 up (a longer list of unique queries
overruns hypothesis' per-example budget). The long run, scale 10, encodes 120 batches."""
VALID_QUERIES = valid_queries()
INVALID_QUERIES = weighted((4, INVALID_TEXTS), (1, NOT_TEXT))
"""What the encoders refuse: text with a lone surrogate (``ValueError``), not text
(``TypeError``). Blank text is encodable; search and rerank refuse it."""


def check_query_vectors(sparse: list[SparseVector], dense: list[Any], dim: int) -> None:
    for vector in sparse:
        assert np.isfinite(vector.weights).all() and (vector.weights > 0).all()
    for matrix in dense:
        assert matrix.ndim == 2 and matrix.shape[0] > 0 and matrix.shape[1] == dim
        assert np.isfinite(matrix).all()


@fuzz_settings(12)
@given(
    queries=st.lists(VALID_QUERIES, min_size=QUERY_BATCH, max_size=QUERY_BATCH, unique=True),
    data=st.data(),
)
@example(queries=["\x00", "\u200b", "a" * 100_000, " \t x \n", "👩\u200d💻🇫🇷", "u.s."], data=None)
def test_valid_queries_go_through_both_encoders_in_any_batch(
    splade_encoder, colbert_encoder, queries, data
):
    tally("queries.encoders.generated", n=len(queries))
    sparse = splade_encoder.encode_queries(queries).vectors
    dense = colbert_encoder.encode_queries(queries)
    assert len(sparse) == len(dense) == len(queries)
    check_query_vectors(sparse, dense, colbert_encoder.dim)
    # The encoders sort a batch by length: each query must still get its own vectors.
    one = data.draw(st.integers(0, len(queries) - 1), label="alone") if data else 0
    alone = splade_encoder.encode_queries([queries[one]]).vectors[0]
    assert alone.dot(sparse[one]) == pytest.approx(alone.dot(alone), rel=1e-3, abs=1e-4)
    np.testing.assert_allclose(
        colbert_encoder.encode_queries([queries[one]])[0], dense[one], atol=1e-4
    )
    tally("queries.encoders.encoded", queries)


def first_surrogate(text: str) -> int:
    return next(i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF)


@fuzz_settings(60)
@given(valid=st.lists(VALID_QUERIES, max_size=4), bad=INVALID_QUERIES, data=st.data())
def test_an_invalid_query_is_refused_with_an_error_naming_it(
    splade_encoder, colbert_encoder, valid, bad, data
):
    position = data.draw(st.integers(0, len(valid)), label="position")
    queries = [*valid[:position], bad, *valid[position:]]
    tally("queries.invalid.generated", n=1)
    if isinstance(bad, str):
        error: type[Exception] = ValueError
        message = rf"query {position} has a lone surrogate .* at character {first_surrogate(bad)}:"
    else:
        error, message = TypeError, rf"query {position} is {type(bad).__name__} .*not str"
    for encoder in (splade_encoder, colbert_encoder):
        with pytest.raises(error, match=message):
            encoder.encode_queries(queries)
    tally("queries.invalid.rejected_with_error", n=1)


@pytest.fixture
def searcher(cluster, splade_encoder, index_names):
    index = index_names(cluster)
    prepare_index(cluster, splade_encoder, index)
    index_documents(
        cluster,
        from_records(DOCS),
        [SpladeFields(splade_encoder)],
        BulkConfig(index, progress=False),
    )
    stored = splade_encoder.encode_documents([f"{d['title']} {d['text']}" for d in DOCS]).vectors
    reference = {
        d["_id"]: SparseVector(v.ids, lucene_stored(v.weights))
        for d, v in zip(DOCS, stored, strict=True)
    }
    return Searcher(cluster, splade_encoder, SearchConfig(index=index)), reference


REFUSAL = {"search": "encodes to no terms", "bm25": "maxClauseCount"}
"""The one documented refusal of a valid query per method (SPLADE: every weight pruned;
BM25: a very long text with more terms than the engine takes)."""


def query_key(tagged: tuple[bool, Any]) -> str:
    return repr(tagged[1])  # distinct queries in one example (hypothesis repeats elements)


SEARCH_QUERIES = weighted(
    (80, st.tuples(st.just(True), VALID_QUERIES)),
    (20, st.tuples(st.just(False), INVALID_QUERIES | BLANK)),
)


def check_hits(hits: list[Any], vector: SparseVector | None, reference: dict[str, Any]) -> None:
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(h.id in reference and math.isfinite(h.score) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits if vector is not None else []:
        exact = vector.dot(reference[hit.id])
        assert hit.score == pytest.approx(exact, rel=1e-3, abs=1e-4)


def search_valid(searcher: Searcher, encoder: Any, query: str, reference: dict[str, Any]) -> None:
    stage = f"queries.search.{searcher.cluster.engine}"
    tally(stage + ".generated_valid", n=1)
    for method in ("search", "bm25"):
        try:
            hits = getattr(searcher, method)(query, k=5)
        except ValueError as error:
            assert REFUSAL[method] in str(error), error
            tally(f"{stage}.{method}_refused_documented", n=1)
            continue
        except ClusterError as error:  # pragma: no cover - the property under test
            pytest.fail(f"{method}({query!r:.80}) reached the engine and failed: {error}")
        vector = encoder.encode_queries([query]).vectors[0] if method == "search" else None
        check_hits(hits, vector, reference)
        tally(f"{stage}.{method}_answered", [query])


def search_invalid(searcher: Searcher, query: Any) -> None:
    stage = f"queries.search.{searcher.cluster.engine}"
    tally(stage + ".generated_invalid", n=1)
    if not isinstance(query, str):
        reason = "not text"
    else:
        reason = "empty" if not query.strip() else "lone surrogate"
    for method in ("search", "bm25"):
        with pytest.raises(ValueError, match=reason):
            getattr(searcher, method)(query, k=5)
    tally(stage + ".invalid_rejected_with_error", n=1)


@fuzz_settings(6)
@given(queries=st.lists(SEARCH_QUERIES, min_size=8, max_size=16, unique_by=query_key))
@example(
    queries=[
        *[(False, q) for q in ["\ud800", "a\udfffb", " \t", "", 5, None, ["q"], b"q"]],
        *[(True, q) for q in ["x" * 100_000, "\x00", "the " * 5_000, "🙂"]],
    ]
)
def test_search_answers_valid_queries_exactly_and_refuses_invalid_ones(
    searcher, splade_encoder, queries
):
    searcher, reference = searcher
    for valid, query in queries:
        if valid:
            search_valid(searcher, splade_encoder, query, reference)
        else:
            search_invalid(searcher, query)


# -- rerank -------------------------------------------------------------------------------

RERANK_TEXTS = {d["_id"]: f"{d['title']} {d['text']}" for d in DOCS[:4]}


@pytest.fixture(scope="module")
def blobs(colbert_encoder):
    codec = Codec("float16", colbert_encoder.dim)
    embedded = colbert_encoder.encode_documents(list(RERANK_TEXTS.values())).embeddings
    good = {i: codec.encode(e) for i, e in zip(RERANK_TEXTS, embedded, strict=True)}
    some = next(iter(embedded))
    nan = good[next(iter(good))][:14] + np.full(some.shape, np.nan, "<f2").tobytes()
    bad = {
        "truncated": base64.b64encode(good[next(iter(good))][:-3]).decode(),
        "int8 header": base64.b64encode(Codec("int8", colbert_encoder.dim).encode(some)).decode(),
        "other dim": base64.b64encode(Codec("float16", 8).encode(some[:, :8])).decode(),
        "not base64": "!!not base64!!",
        "empty": "",
        "header only": base64.b64encode(good[next(iter(good))][:14]).decode(),
        "random bytes": base64.b64encode(b"\x00\xff" * 40).decode(),
        "nan": base64.b64encode(nan).decode(),
        "int": 12,
        "list": [1, 2],
        "dict": {"a": 1},
    }
    return codec, {i: base64.b64encode(b).decode() for i, b in good.items()}, bad


def hit_kinds(bad: dict[str, Any]) -> st.SearchStrategy[tuple[str, Any]]:
    # Mostly distinct ids, now and then a repeat (which must raise).
    ids = weighted(
        (85, st.text(CHARS, min_size=1, max_size=10)), (15, st.sampled_from([*RERANK_TEXTS, "x"]))
    )
    bad_score = st.one_of(st.text(max_size=3), st.just(math.nan))
    score = st.floats(-1e6, 1e6, allow_nan=False)
    return weighted(
        (50, st.tuples(st.just("good"), ids, score)),
        (10, st.tuples(st.just("good"), ids, st.none())),  # sorted hits have a null _score
        (8, st.tuples(st.just("pair"), ids, score)),
        (8, st.tuples(st.just("no source"), ids, score)),
        (5, st.tuples(st.just("source not a dict"), ids, JSON_VALUES)),
        (15, st.tuples(st.sampled_from(sorted(bad)), ids, score)),
        (2, st.tuples(st.just("bad score"), ids, bad_score)),
        (1, st.tuples(st.just("bad id"), st.one_of(WRONG, st.just(None)), score)),
        (1, st.tuples(st.just("not a hit"), st.none(), JSON_VALUES)),
    )


def build_hit(kind: str, doc_id: Any, value: Any, good: dict[str, str], bad: dict[str, Any]):
    blob = good.get(doc_id if isinstance(doc_id, str) else "", good[next(iter(good))])
    if kind == "good":
        return {"_id": doc_id, "_score": value, "_source": {"colbert": blob, "text": "t"}}
    if kind == "pair":
        return (doc_id, value)
    if kind == "no source":
        return {"_id": doc_id, "_score": value}
    if kind == "source not a dict":
        return {"_id": doc_id, "_score": 1.0, "_source": value}
    if kind == "bad score":
        return {"_id": doc_id, "_score": value, "_source": {"colbert": blob}}
    if kind == "bad id":
        return {"_id": doc_id, "_score": value, "_source": {"colbert": blob}}
    if kind == "not a hit":
        return value if not isinstance(value, dict) else {**value, "_idx": 1}
    return {"_id": doc_id, "_score": value, "_source": {"colbert": bad[kind]}}


@fuzz_settings(120)
@given(
    data=st.data(),
    tagged=SEARCH_QUERIES,
    on_missing=st.sampled_from(["error", "first_stage"]),
    top_k=st.one_of(st.none(), st.integers(1, 8)),
)
def test_rerank_returns_every_hit_once_or_a_documented_error(
    colbert_encoder, blobs, data, tagged, on_missing, top_k
):
    query_ok, query = tagged
    codec, good, bad = blobs
    kinds = data.draw(st.lists(hit_kinds(bad), max_size=8), label="hits")
    hits = [build_hit(kind, doc_id, value, good, bad) for kind, doc_id, value in kinds]
    reranker = Reranker(colbert_encoder, codec, RerankConfig(top_k=top_k, on_missing=on_missing))
    tally("queries.rerank.calls", n=1)
    tally("queries.rerank.hits", n=len(hits))
    malformed = {"bad score", "bad id", "not a hit"}
    usable = isinstance(query, str) and query.strip() and query.encode("utf-8", "ignore")
    assert query_ok == bool(usable and not any(0xD800 <= ord(c) <= 0xDFFF for c in query))
    ids = [d for k, d, _ in kinds if k not in malformed]
    try:
        result = reranker.rerank(query, hits)
    except RerankError as error:
        assert on_missing == "error" and error.unusable and query_ok
        tally("queries.rerank.unusable_hits_refused_with_error", n=1)
        return
    except (ValueError, TypeError) as error:
        assert str(error)
        assert (
            (not query_ok) or any(k in malformed for k, _, _ in kinds) or len(set(ids)) < len(ids)
        ), error
        which = "malformed_hits" if query_ok else "invalid_query"
        tally(f"queries.rerank.{which}_rejected_with_error", n=1)
        return
    assert query_ok and not any(k in malformed for k, _, _ in kinds) and len(set(ids)) == len(ids)
    assert sorted(h["_id"] for h in result.hits) == sorted(str(i) for i in ids)
    limit = len(hits) if top_k is None else min(top_k, len(hits))
    head = {str(d): k for k, d, _ in kinds[:limit]}
    expect_ok = {i for i, k in head.items() if k == "good"}
    assert set(result.stats.unusable) == set(head) - expect_ok
    assert all(result.stats.unusable.values())
    assert result.stats.reranked == len(expect_ok)
    if expect_ok:
        q = torch.from_numpy(colbert_encoder.encode_queries([query])[0])
        for hit in result.hits[: len(expect_ok)]:
            blob = good.get(hit["_id"], good[next(iter(good))])
            reference = torch.from_numpy(codec.decode(base64.b64decode(blob)))
            expected = maxsim_reference(q, [reference])[0].item()
            assert hit["_colbert_score"] == pytest.approx(expected, abs=1e-4)
    tally("queries.rerank.answered", [query])


def test_a_residual_centroid_beyond_the_codebook_is_reported_per_hit(colbert_encoder):
    from colbert_rerank.codebook import fit_codebook

    embedded = colbert_encoder.encode_documents(list(RERANK_TEXTS.values())).embeddings
    book = fit_codebook(np.concatenate(embedded), bits=2, centroids=8, seed=0)
    codec = Codec("residual", colbert_encoder.dim, book)
    blob = bytearray(codec.encode(embedded[0]))
    blob[14:16] = (60000).to_bytes(2, "little")  # first token's centroid id: out of range
    hits = [
        {"_id": "bad", "_score": 2.0, "_source": {"colbert": base64.b64encode(blob).decode()}},
        {"_id": "ok", "_score": 1.0, "_source": {"colbert": codec.encode(embedded[1])}},
    ]
    lenient = Reranker(colbert_encoder, codec, RerankConfig(on_missing="first_stage"))
    result = lenient.rerank("heart attack", hits)
    assert [h["_id"] for h in result.hits] == ["ok", "bad"]
    assert "centroid id beyond the codebook" in result.stats.unusable["bad"]
    with pytest.raises(RerankError, match=r"\['bad'\]") as caught:
        Reranker(colbert_encoder, codec).rerank("heart attack", hits)
    assert list(caught.value.unusable) == ["bad"]
