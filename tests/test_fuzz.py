"""Bad input, generated (hypothesis): records, queries and hits through validation, encoding,
bulk, search and rerank.

Properties: only the package's documented errors come out (``ValueError``/``TypeError``,
:class:`RerankError`, per-document failures in the bulk report), every input is accounted
for exactly once, and nothing indexed or returned differs from its input.

Sizes scale with ``FUZZ_SCALE`` (default 1, the CI size; ``benchmarks/fuzz_long.py`` runs
more). The number of generated inputs is written at the end of the module, and to the JSON
file ``FUZZ_COUNTS_FILE`` names, if set. Runs are derandomised, so CI is reproducible.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from corpus_fixture import DOCS
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


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    line = "fuzz cases: " + ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + line)
    target = os.environ.get("FUZZ_COUNTS_FILE")
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(dict(COUNTS, scale=SCALE), handle)


# -- strategies ----------------------------------------------------------------------------

SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
CHARS = st.one_of(
    st.characters(),  # any Unicode scalar
    st.characters(max_codepoint=0x1F),  # C0 controls, NUL included
    st.characters(min_codepoint=0x7F, max_codepoint=0x9F),  # DEL and C1 controls
    st.sampled_from("\u200b\ufeff\u202e\u0301\ufffd\U0010ffff"),  # invisible, bidi, combining
)
WORDS = [w.lower() for d in DOCS for w in d["text"].replace(".", " ").split()]
SPECIAL = ["", " ", "\t\n", "\x00", "\u200b", "\ufeff", "%", ".", "u.s.", "100%"]


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``options``, each drawn with its relative weight."""
    total = sum(weight for weight, _ in options)

    def pick(roll: int) -> st.SearchStrategy[Any]:
        for weight, strategy in options:
            if roll < weight:
                return strategy
            roll -= weight
        raise AssertionError(roll)

    return st.integers(0, total - 1).flatmap(pick)


def enormous(min_chars: int, max_chars: int) -> st.SearchStrategy[str]:
    return st.builds(
        lambda piece, n: (piece * (n // len(piece) + 1))[:n],
        st.text(CHARS, min_size=1, max_size=6),
        st.integers(min_chars, max_chars),
    )


def texts(big: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    plain = st.text(CHARS, max_size=40)
    words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join)
    lone = st.builds(lambda a, s, b: a + s + b, plain, SURROGATE, plain)
    # Branches repeat to weight them: enormous texts are rare, because they are slow to encode.
    # Enormous texts are rare: they are slow to encode.
    return weighted((30, words), (25, plain), (8, st.sampled_from(SPECIAL)), (5, lone), (1, big))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(CHARS, max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", max_size=2), inner, max_size=3)
    ),
    max_leaves=6,
)
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text("ab", max_size=2), st.integers(), max_size=2),
)
IDS = weighted(
    (60, st.text(CHARS, min_size=1, max_size=12)),
    (15, st.integers(-(10**6), 10**6)),
    (10, st.sampled_from(["a", "b", "1", "é", "a b", "\x00", "%2E", "_all", " "])),  # duplicates
    (3, st.sampled_from([10**600, 2**63, -1, 0])),
    (3, st.text("x", min_size=510, max_size=520)),  # around the 512-byte _id limit
    (4, st.builds(lambda a, s: a + s, st.text(CHARS, max_size=4), SURROGATE)),
    (5, WRONG),
)
RECORD_TEXTS = texts(enormous(100_000, 160_000))


def records(text: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    record = st.fixed_dictionaries(
        {"_id": IDS, "text": weighted((85, text), (15, WRONG))},
        optional={
            "title": weighted((85, text), (15, WRONG)),
            "meta": JSON_VALUES,
            "year": st.one_of(st.integers(1900, 2100), JSON_VALUES),
        },
    )
    return weighted((95, record), (5, JSON_VALUES))  # now and then not an object at all


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
    COUNTS["records_encoded"] += len(encoded)
    COUNTS["records_rejected"] += len(batch) - len(encoded)


@fuzz_settings(12)
@given(batch=st.lists(records(RECORD_TEXTS), min_size=50, max_size=100))
@example(batch=[{"_id": "a", "text": 10**5000}, {"_id": "b", "text": "x", "meta": [float("nan")]}])
@example(batch=[{"_id": 10**600, "text": "x"}, {"_id": "c", "text": "x", "meta": {"k": {1: 2}}}])
def test_every_record_is_encoded_or_rejected_with_a_reason(splade_encoder, batch):
    results = run_producer(batch, SpladeFields(splade_encoder))
    check_accounting(batch, results, splade_encoder.vocabulary)
    COUNTS["records"] += len(batch)


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
    batch=st.lists(records(texts(enormous(100_000, 110_000))), min_size=20, max_size=40),
    data=st.data(),
)
def test_bulk_accounts_for_every_record_and_stores_them_unchanged(
    cluster, splade_encoder, index_names, tmp_path_factory, batch, data
):
    index = index_names(cluster, f"b{COUNTS['bulk_examples_' + cluster.engine]}")
    COUNTS["bulk_examples_" + cluster.engine] += 1
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
    COUNTS["bulk_records_" + cluster.engine] += len(batch)
    COUNTS["bulk_refused_by_engine_" + cluster.engine] += len(refused)


# -- queries ------------------------------------------------------------------------------

QUERY_TEXTS = weighted((90, texts(enormous(10_000, 100_000))), (10, WRONG))


@fuzz_settings(10)
@given(queries=st.lists(texts(enormous(1_000, 100_000)), min_size=100, max_size=100))
def test_query_encoding_takes_any_text_or_names_the_bad_one(
    splade_encoder, colbert_encoder, queries
):
    has_surrogate = [any(0xD800 <= ord(c) <= 0xDFFF for c in q) for q in queries]
    for encoder in (splade_encoder, colbert_encoder):
        if any(has_surrogate):
            with pytest.raises(ValueError, match=rf"query {has_surrogate.index(True)} has a lone"):
                encoder.encode_queries(queries)
            continue
        out = encoder.encode_queries(queries)
        vectors = out.vectors if hasattr(out, "vectors") else out
        assert len(vectors) == len(queries)
        for vector in vectors:
            if isinstance(vector, SparseVector):
                assert np.isfinite(vector.weights).all() and (vector.weights > 0).all()
            else:
                assert vector.shape[0] > 0 and np.isfinite(vector).all()
    COUNTS["queries_encoded"] += len(queries)


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


@fuzz_settings(6)
@given(queries=st.lists(QUERY_TEXTS, min_size=10, max_size=20))
@example(queries=["\ud800", "a\udfffb", "x" * 100_000, "\x00", " \t", "", 5, None, ["q"]])
def test_search_returns_exact_hits_or_a_value_error(searcher, splade_encoder, queries):
    searcher, reference = searcher
    for query in queries:
        for method in ("search", "bm25"):
            try:
                hits = getattr(searcher, method)(query, k=5)
            except ValueError as error:
                assert str(error)
                COUNTS["queries_refused"] += 1
                continue
            except ClusterError as error:  # pragma: no cover - the property under test
                pytest.fail(f"{method}({query!r:.80}) reached the engine and failed: {error}")
            assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
            assert all(h.id in reference and math.isfinite(h.score) for h in hits)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            if method == "search":
                vector = splade_encoder.encode_queries([query]).vectors[0]
                for hit in hits:
                    exact = vector.dot(reference[hit.id])
                    assert hit.score == pytest.approx(exact, rel=1e-3, abs=1e-4)
            COUNTS["queries_answered"] += 1
    COUNTS["queries_searched_" + searcher.cluster.engine] += len(queries)


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
    query=weighted((90, texts(enormous(1_000, 50_000))), (10, WRONG)),
    on_missing=st.sampled_from(["error", "first_stage"]),
    top_k=st.one_of(st.none(), st.integers(1, 8)),
)
def test_rerank_returns_every_hit_once_or_a_documented_error(
    colbert_encoder, blobs, data, query, on_missing, top_k
):
    codec, good, bad = blobs
    kinds = data.draw(st.lists(hit_kinds(bad), max_size=8), label="hits")
    hits = [build_hit(kind, doc_id, value, good, bad) for kind, doc_id, value in kinds]
    reranker = Reranker(colbert_encoder, codec, RerankConfig(top_k=top_k, on_missing=on_missing))
    COUNTS["rerank_calls"] += 1
    COUNTS["rerank_hits"] += len(hits)
    malformed = {"bad score", "bad id", "not a hit"}
    query_ok = isinstance(query, str) and query.strip() and query.encode("utf-8", "ignore")
    query_ok = query_ok and not any(0xD800 <= ord(c) <= 0xDFFF for c in query)
    ids = [d for k, d, _ in kinds if k not in malformed]
    try:
        result = reranker.rerank(query, hits)
    except RerankError as error:
        assert on_missing == "error" and error.unusable and query_ok
        COUNTS["rerank_refused"] += 1
        return
    except (ValueError, TypeError) as error:
        assert str(error)
        assert (
            (not query_ok) or any(k in malformed for k, _, _ in kinds) or len(set(ids)) < len(ids)
        ), error
        COUNTS["rerank_refused"] += 1
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
    COUNTS["rerank_answered"] += 1


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
