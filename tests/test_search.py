"""Search, explain, hybrid and index administration against the real nodes."""

from __future__ import annotations

import logging

import fusion_corpus
import numpy as np
import pytest
from corpus_fixture import DOCS, QUERIES

from colbert_rerank.fusion import Fusion, fuse
from splade_es.cluster.admin import (
    IndexMismatchError,
    check_index_name,
    ensure_index,
    get_index,
    swap_alias,
)
from splade_es.cluster.mapping import IndexLayout, index_body
from splade_es.data.corpus import from_records
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder, resolve_model_path
from splade_es.encoding.features import Pruning, SparseVector, lucene_stored
from splade_es.indexing.bulk import BulkConfig, index_documents
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.search.searcher import SearchConfig, Searcher


def build(cluster, encoder, name, records=DOCS, mapping_type="auto", keep=()):
    from splade_es.data.corpus import FieldNames

    prepare_index(cluster, encoder, name, mapping_type)
    index_documents(
        cluster,
        from_records(records, FieldNames(keep=keep)),
        [SpladeFields(encoder)],
        BulkConfig(index=name, progress=False),
    )
    return name


@pytest.fixture
def indexed(cluster, splade_encoder, index_names):
    return build(cluster, splade_encoder, index_names(cluster))


def exact_ranking(encoder, query, records=DOCS, document_encoder=None):
    """Scores at the engine's storage precision, computed in memory: ``encoder``'s query
    weights dotted with the weights ``document_encoder`` (default: the same) stored."""
    q = encoder.encode_queries([query]).vectors[0]
    texts = [f"{d['title']} {d['text']}" for d in records]
    docs = (document_encoder or encoder).encode_documents(texts).vectors
    scores = {}
    for record, vector in zip(records, docs, strict=True):
        stored = SparseVector(vector.ids, lucene_stored(vector.weights))
        score = q.dot(stored)
        if score > 0:
            scores[record["_id"]] = score
    return scores


def test_splade_search_is_the_exact_dot_product(cluster, splade_encoder, indexed):
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=indexed))
    for query, relevant in QUERIES.values():
        hits = searcher.search(query, k=len(DOCS))
        expected = exact_ranking(splade_encoder, query)
        assert {h.id: h.score for h in hits} == pytest.approx(expected, rel=1e-4)
        assert hits[0].id == relevant
        assert "splade" not in hits[0].source and hits[0].source["text"]


def test_explain_adds_up_to_the_engine_score(cluster, splade_encoder, indexed):
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=indexed))
    hit = searcher.search("does aspirin prevent heart attacks", k=1)[0]
    explanation = searcher.explain("does aspirin prevent heart attacks", hit.id)
    assert explanation.score == pytest.approx(hit.score, rel=1e-4)
    contributions = [i.contribution for i in explanation.impacts]
    assert contributions == sorted(contributions, reverse=True)
    assert {"##pi", "heart"} <= {i.token for i in explanation.impacts}  # as ##pi ##rin
    assert explanation.query_expansion  # SPLADE adds terms the query did not contain
    assert "does" not in explanation.query_expansion


def test_keys_with_dots_and_percent_round_trip_through_the_engine(cluster, splade_encoder, indexed):
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=indexed))
    stored = searcher.stored_vector("tech-2")  # "v2.0 ... 35% ... U.S. ... 3.1"
    tokens = set(splade_encoder.vocabulary.tokens(stored))
    assert "." in tokens and "%" in tokens
    explanation = searcher.explain("version 2.0 is 35% faster", "tech-2")
    assert {".", "%"} & {i.token for i in explanation.impacts}


def test_bm25_hybrid_and_filters(cluster, splade_encoder, index_names):
    records = [dict(d, year=2000 + i) for i, d in enumerate(DOCS)]
    index = build(cluster, splade_encoder, index_names(cluster), records, keep=("year",))
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    assert searcher.bm25("espresso coffee", k=3)[0].id == "cook-2"
    hybrid = searcher.hybrid("espresso coffee", k=5)
    assert hybrid[0].id == "cook-2" and [h.rank for h in hybrid] == [1, 2, 3, 4, 5]
    year = next(r["year"] for r in records if r["_id"] == "med-2")
    hits = searcher.search("aspirin heart", k=10, filters=[{"range": {"year": {"gte": year}}}])
    assert hits and all(h.source["year"] >= year for h in hits)
    assert "med-1" not in {h.id for h in hits}


def test_fusion_changes_the_top_hit(cluster, splade_encoder, index_names):
    index = build(cluster, splade_encoder, index_names(cluster), fusion_corpus.DOCS)
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    query, everything = fusion_corpus.QUERY, len(fusion_corpus.DOCS)
    lexical = searcher.bm25(query, k=everything)
    learned = searcher.search(query, k=everything)
    # The case: each ranking has its own top hit, and one document is second in both.
    assert [h.id for h in lexical][:2] == [fusion_corpus.BM25_TOP, fusion_corpus.RRF_TOP]
    assert [h.id for h in learned][:2] == [fusion_corpus.SPLADE_TOP, fusion_corpus.RRF_TOP]
    expected = fuse(
        {h.id: h.score for h in lexical}, {h.id: h.score for h in learned}, Fusion("rrf")
    )
    rrf = searcher.hybrid(query, k=3)
    assert rrf[0].id == fusion_corpus.RRF_TOP  # neither BM25's nor SPLADE's top hit
    assert rrf[0].score == pytest.approx(2 / 62)
    assert {h.id: h.score for h in rrf} == pytest.approx(
        {i: expected[i] for i in sorted(expected, key=lambda i: -expected[i])[:3]}
    )
    weighted = searcher.hybrid(query, k=3, fusion=Fusion("weighted", weight=0.5))
    assert weighted[0].id == fusion_corpus.BM25_TOP  # BM25's margin outweighs SPLADE's
    leaning = searcher.hybrid(query, k=3, fusion=Fusion("weighted", weight=0.9))
    assert leaning[0].id == fusion_corpus.SPLADE_TOP


def test_model_mismatch_is_refused_unless_allowed(cluster, splade_encoder, indexed, caplog):
    # The same weights loaded from their folder, pooled by sum: another model name and pooling.
    path = str(resolve_model_path("splade-tiny"))
    other = SpladeEncoder(EncoderConfig(model=path, device="cpu", pooling="sum"))
    with pytest.raises(
        ValueError, match=r"pooling: index has 'max', encoder has 'sum'.*--allow-model-mismatch"
    ):
        Searcher(cluster, other, SearchConfig(index=indexed))
    with caplog.at_level(logging.WARNING, logger="splade_es.search.searcher"):
        searcher = Searcher(cluster, other, SearchConfig(index=indexed, allow_model_mismatch=True))
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert f"built with model 'splade-tiny', not the encoder's {path!r}" in message
    assert "pooling: index has 'max', encoder has 'sum'" in message
    assert "Search with the model that built the index" in message
    # The search goes on with the other encoder's query weights against the stored weights.
    query = "how is espresso coffee made"
    hits = searcher.search(query, k=len(DOCS))
    expected = exact_ranking(other, query, document_encoder=splade_encoder)
    assert {h.id: h.score for h in hits} == pytest.approx(expected, rel=1e-4)
    own = exact_ranking(splade_encoder, query)
    assert expected != pytest.approx(own, rel=1e-2)  # sum pooling really changed the scores


def test_bad_searches(cluster, splade_encoder, indexed, index_names):
    with pytest.raises(ValueError, match="does not exist"):
        Searcher(cluster, splade_encoder, SearchConfig(index=index_names(cluster, "missing")))
    plain = index_names(cluster, "plain")
    cluster.request(
        "PUT", f"/{plain}", body={"mappings": {"properties": {"text": {"type": "text"}}}}
    )
    with pytest.raises(ValueError, match="was not built by splade-es"):
        Searcher(cluster, splade_encoder, SearchConfig(index=plain))
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=indexed))
    with pytest.raises(ValueError, match="is empty"):
        searcher.search("   ")
    strict = SpladeEncoder(EncoderConfig(device="cpu", query_pruning=Pruning(min_weight=50.0)))
    strict_searcher = Searcher(cluster, strict, SearchConfig(index=indexed))
    with pytest.raises(ValueError, match="encodes to no terms after pruning"):
        strict_searcher.search("coffee")
    with pytest.raises(ValueError, match="'nope' is not in"):
        searcher.explain("coffee", "nope")


def test_existing_indices_are_never_replaced(cluster, splade_encoder, indexed, index_names):
    info = get_index(cluster, indexed)
    body = index_body(IndexLayout(mapping_type=info.mapping_type), dict(info.meta))
    assert ensure_index(cluster, indexed, body) == "exists"
    changed = dict(info.meta, weights_sha256="0" * 16)
    with pytest.raises(IndexMismatchError, match=r"was built differently.*weights_sha256"):
        ensure_index(
            cluster, indexed, index_body(IndexLayout(mapping_type=info.mapping_type), changed)
        )
    plain = index_names(cluster, "foreign")
    cluster.request("PUT", f"/{plain}")
    with pytest.raises(IndexMismatchError, match="not created by splade-es"):
        ensure_index(cluster, plain, body)
    assert get_index(cluster, plain) is not None  # still there


def test_alias_swap_keeps_the_old_index(cluster, splade_encoder, index_names):
    first = build(cluster, splade_encoder, index_names(cluster, "v1"), DOCS[:3])
    second = build(cluster, splade_encoder, index_names(cluster, "v2"), DOCS[:5])
    alias = index_names(cluster, "live")
    assert swap_alias(cluster, alias, first) == []
    assert swap_alias(cluster, alias, second) == [first]
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=alias))
    assert len(searcher.search("the", k=10)) <= 5
    assert get_index(cluster, alias).name == second
    assert get_index(cluster, first) is not None
    with pytest.raises(ValueError, match="an index has that name"):
        swap_alias(cluster, first, second)


@pytest.mark.parametrize(
    "name", ["", "UPPER", "_system", "-x", "a*", "a,b", "..", "a b", "x" * 256]
)
def test_index_names_are_validated(name):
    with pytest.raises(ValueError, match="is not allowed"):
        check_index_name(name)


@pytest.mark.es
def test_sparse_vector_mapping_on_elasticsearch(es_cluster, splade_encoder, index_names):
    index = build(es_cluster, splade_encoder, index_names(es_cluster), mapping_type="sparse_vector")
    searcher = Searcher(es_cluster, splade_encoder, SearchConfig(index=index))
    assert searcher.mapping_type == "sparse_vector"
    hits = searcher.search("how is espresso coffee made", k=len(DOCS))
    expected = exact_ranking(splade_encoder, "how is espresso coffee made")
    assert {h.id: h.score for h in hits} == pytest.approx(expected, rel=1e-4)


def test_quantisation_error_is_bounded(splade_encoder):
    vectors = splade_encoder.encode_documents([d["text"] for d in DOCS]).vectors
    weights = np.concatenate([v.weights for v in vectors])
    relative = (weights - lucene_stored(weights)) / weights
    assert relative.max() < 2**-8 and relative.min() >= 0


def test_average_stored_terms_counts_what_the_index_holds(cluster, splade_encoder, indexed):
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=indexed))
    vectors = splade_encoder.encode_documents([f"{d['title']} {d['text']}" for d in DOCS]).vectors
    expected = np.mean([len(v.ids) for v in vectors])
    assert searcher.average_stored_terms(page=5) == pytest.approx(expected)
