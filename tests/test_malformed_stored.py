"""Stored data written by someone else, read through the package on the real nodes: each bad
hit is detected and reported on its own, the good ones are served."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from click.testing import CliRunner
from corpus_fixture import DOCS

from colbert_rerank.codecs import Codec
from colbert_rerank.rerank import RerankConfig, RerankError
from splade_es.cli import cli
from splade_es.cluster.errors import ClusterError
from splade_es.data.corpus import Document, from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.indexing.splade_fields import SpladeFields
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher

pytestmark = pytest.mark.fuzz

COFFEE = "Espresso forces hot water through finely ground coffee beans."


def corruptions(good: bytes, dim: int, embeddings: np.ndarray) -> dict[str, tuple[object, str]]:
    """``{doc id: (stored value, what the reason must say)}``."""
    nan = good[:14] + np.full(embeddings.shape, np.nan, "<f2").tobytes()
    return {
        "truncated": (base64.b64encode(good[:-7]).decode(), "truncated or corrupted"),
        "int8-header": (
            base64.b64encode(Codec("int8", dim).encode(embeddings)).decode(),
            "blob is int8",
        ),
        "other-dim": (
            base64.b64encode(Codec("float16", 16).encode(embeddings[:, :16])).decode(),
            "at dim 16",
        ),
        "empty": ("", "shorter than the 14-byte header"),
        "not-ours": (base64.b64encode(b"PK\x03\x04 a zip file, say").decode(), "not a colbert"),
        "nan": (base64.b64encode(nan).decode(), "NaN or infinity"),
    }


@pytest.mark.parametrize("form", ["source", "doc_values", "stored"])
def test_corrupt_embeddings_written_by_someone_else_are_reported_per_hit(
    cluster, splade_encoder, colbert_encoder, index_names, form
):
    index = index_names(cluster)
    storage = ColbertStorage(codec="float16", form=form)
    config = BuildConfig(BulkConfig(index=index, progress=False))
    built = build_index(
        cluster,
        from_records(DOCS),
        splade_encoder,
        config,
        ColbertIndexing(colbert_encoder, storage),
    )
    fields = built.prepared.embeddings
    # Documents written directly with the client, as another tool would: the SPLADE terms
    # are right (so that search finds them), the stored embeddings are not.
    splade = SpladeFields(splade_encoder).encode([Document("x", COFFEE)]).fields[0]
    embeddings = colbert_encoder.encode_documents([COFFEE]).embeddings[0]
    good = fields.codec.encode(embeddings)
    bad = corruptions(good, colbert_encoder.dim, embeddings)
    for doc_id, (value, _) in bad.items():
        cluster.request(
            "PUT", f"/{index}/_doc/{doc_id}", body={"text": COFFEE, "colbert": value, **splade}
        )
    mapping = cluster.request("GET", f"/{index}/_mapping")[index]["mappings"]
    not_base64 = {"text": COFFEE, "colbert": "%%% not base64 %%%", **splade}
    if form == "source":
        # Kept in _source only (no doc values, not stored): neither engine decodes it on
        # write, both accept a value that is not base64, and only the reranker can tell.
        assert mapping["properties"]["colbert"] == {"type": "binary"}, mapping
        written = cluster.request("PUT", f"/{index}/_doc/not-base64", body=not_base64)
        assert written["result"] == "created", written
        stored = cluster.request("GET", f"/{index}/_doc/not-base64")["_source"]["colbert"]
        assert stored == "%%% not base64 %%%"
        bad["not-base64"] = (not_base64["colbert"], "not base64")
    else:
        # Doc values or a stored field, out of _source: the engine decodes the base64 on
        # write and refuses it.
        expected = {"doc_values": {"doc_values": True}, "stored": {"store": True}}[form]
        assert mapping["properties"]["colbert"] == {"type": "binary", **expected}, mapping
        assert mapping["_source"] == {"excludes": ["colbert"]}, mapping["_source"]
        with pytest.raises(ClusterError) as refused:
            cluster.request("PUT", f"/{index}/_doc/not-base64", body=not_base64)
        assert refused.value.status == 400, refused.value
    cluster.request("POST", f"/{index}/_refresh")

    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, include_embeddings=True))
    hits = [h.as_dict() for h in searcher.search("espresso coffee", k=50)]
    assert set(bad) <= {h["_id"] for h in hits}
    lenient = open_reranker(cluster, index, colbert_encoder, RerankConfig(on_missing="first_stage"))
    result = lenient.rerank("espresso coffee", hits)
    assert set(result.stats.unusable) == set(bad)
    for doc_id, (_, expected) in bad.items():
        assert expected in result.stats.unusable[doc_id], (doc_id, result.stats.unusable[doc_id])
    reranked = [h for h in result.hits if h["_colbert_score"] is not None]
    assert len(reranked) == len(hits) - len(bad) == result.stats.reranked
    assert all(np.isfinite(h["_colbert_score"]) for h in reranked)
    assert reranked[0]["_id"] == "cook-2"
    assert [h["_id"] for h in result.hits[len(reranked) :]] == [
        h["_id"] for h in hits if h["_id"] in bad
    ]  # the bad ones follow, in first-stage order

    with pytest.raises(RerankError) as caught:
        open_reranker(cluster, index, colbert_encoder).rerank("espresso coffee", hits)
    assert caught.value.unusable == result.stats.unusable
    assert all(doc_id in str(caught.value) for doc_id in bad)

    # Hits without their embeddings go through the fetch: the same per-hit reasons.
    bare = [{"_id": h["_id"], "_score": h["_score"]} for h in hits]
    fetched = lenient.rerank("espresso coffee", bare)
    assert fetched.stats.unusable == result.stats.unusable


def test_splade_keys_written_by_someone_else_are_shown_raw_and_flagged(
    cluster, splade_encoder, index_names
):
    index = index_names(cluster)
    config = BuildConfig(BulkConfig(index=index, progress=False))
    build_index(cluster, from_records(DOCS), splade_encoder, config)
    features = SpladeFields(splade_encoder).encode([Document("x", COFFEE)]).fields[0]["splade"]
    foreign = {"NOT-A-TOKEN": 1.5, "u%2es": 0.5, "%zz": 2.0, "espresso%": 0.25}
    cluster.request(
        "PUT",
        f"/{index}/_doc/foreign",
        body={"text": COFFEE, "splade": {**features, **foreign}},
        params={"refresh": "true"},
    )
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    assert "foreign" in [h.id for h in searcher.search("espresso coffee", k=50)]

    with pytest.raises(ValueError, match=r"holds 4 'splade' entries .*'NOT-A-TOKEN'"):
        searcher.stored_vector("foreign")
    vector, raw = searcher.stored_terms("foreign")
    assert raw == foreign and len(vector) == len(features)

    explanation = searcher.explain("espresso coffee", "foreign")
    assert explanation.foreign_terms == foreign
    clean = searcher.explain("espresso coffee", "cook-2")
    assert clean.foreign_terms == {} and searcher.stored_terms("cook-2")[1] == {}
    # The foreign keys match none of this model's query keys: the engine's score is the sum
    # of the explained contributions.
    hit = next(h for h in searcher.search("espresso coffee", k=50) if h.id == "foreign")
    assert hit.score == pytest.approx(explanation.score, rel=1e-3)

    # The CLI's term display shows them raw, flagged, instead of failing or hiding them.
    args = ["explain", "espresso coffee", "--id", "foreign", "--index", index]
    shown = CliRunner().invoke(cli, [*args, "--es-url", cluster.url])
    assert shown.exit_code == 0, shown.output
    assert "warning: 4 stored term(s) were not written by this model" in shown.output
    assert "'NOT-A-TOKEN'=1.5" in shown.output and "'%zz'=2.0" in shown.output
