"""The LangChain and LlamaIndex retrievers: pages and metadata of hits, metadata filters as
engine clauses (unit), and the real frameworks' retrievers on both real nodes, checked against
search_then_rerank called directly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from corpus_fixture import DOCS
from langchain_core.documents import Document
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from conftest import IndexNames
from splade_es.data.corpus import FieldNames, from_records
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.retrievers.backend import IndexModels, open_parts
from splade_es.retrievers.documents import PageFields, check_text_fields, hit_page
from splade_es.retrievers.langchain import SpladeRetriever
from splade_es.retrievers.llamaindex import SpladeNodeRetriever, metadata_filter_clauses
from splade_es.search.pipeline import MODES, Retrieval, search_then_rerank
from splade_es.search.rerank import open_reranker
from splade_es.search.results import Hit
from splade_es.search.searcher import SearchConfig, Searcher

QUERY = "does aspirin prevent heart attacks"
TOPICS = [d["_id"].split("-")[0] for d in DOCS]
RECORDS = [
    dict(d, topic=t, year=2000 + i, tag=f"Topic {t}")
    for i, (d, t) in enumerate(zip(DOCS, TOPICS, strict=True))
]
TAG_MAPPING = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
SOURCE = {"title": "Aspirin", "text": "Lowers risk.", "year": 2020, "splade": {"a": 1.0}}


# -- pages and metadata (pure) --------------------------------------------------------------


def test_a_hit_becomes_page_text_and_metadata_with_its_scores():
    page = hit_page(Hit("d1", 2.5, 1, SOURCE, "docs"), ("title", "text"), ": ", ("splade",))
    assert page.text == "Aspirin: Lowers risk." and page.score == 2.5 and page.id == "d1"
    assert page.metadata == {
        "year": 2020,
        "id": "d1",
        "index": "docs",
        "score": 2.5,
        "rank": 1,
        "first_stage_score": 2.5,  # nothing reranked it: the first stage is the final one
        "first_stage_rank": 1,
        "colbert_score": None,
    }
    reranked = Hit("d1", 0.9, 1, SOURCE, "docs", 7.0, 4, 0.9)
    metadata = hit_page(reranked, ("text",)).metadata
    assert metadata["first_stage_score"] == 7.0 and metadata["first_stage_rank"] == 4
    assert metadata["colbert_score"] == 0.9 and metadata["title"] == "Aspirin"


def test_a_hit_without_a_title_uses_its_text():
    hit = Hit("d2", 1.0, 2, {"text": "Only text.", "title": ""}, "docs")
    assert hit_page(hit, ("title", "text")).text == "Only text."


def test_page_errors_name_the_field_and_the_fix():
    with pytest.raises(ValueError, match=r"Hit 'd1' of 'docs' has none of the text fields "):
        hit_page(Hit("d1", 1.0, 1, {"year": 1}, "docs"), ("title", "body"))
    with pytest.raises(ValueError, match=r"Text field 'year' of hit 'd1' holds int .*leave it out"):
        hit_page(Hit("d1", 1.0, 1, SOURCE, "docs"), ("text", "year"))
    with pytest.raises(ValueError, match=r"stores fields \['score'\] whose names the retriever"):
        hit_page(Hit("d1", 1.0, 1, {"text": "t", "score": 3}, "docs"), ("text",))
    with pytest.raises(ValueError, match=r"expected a tuple of field names, e.g. text=\('text',\)"):
        PageFields(text="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name at least one stored text field"):
        PageFields(text=())
    with pytest.raises(ValueError, match=r"\['rank'\] are metadata keys the retriever sets"):
        PageFields(text=("text", "rank"))
    with pytest.raises(ValueError, match=r"Index 'docs' has no field 'body' .*PageFields\(text="):
        check_text_fields(["title", "body"], {"title": "text"}, "docs")


def test_models_for_colbert_without_rerank_are_refused_before_connecting():
    with pytest.raises(ValueError, match=r"IndexModels\(colbert='m'\) without rerank"):
        open_parts("http://127.0.0.1:1", "docs", models=IndexModels(colbert="m"))


def test_importing_the_package_loads_no_framework_and_no_torch():
    program = "import sys, splade_es, splade_es.retrievers; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    loaded = {name.split(".")[0] for name in eval(out.stdout)}
    assert not loaded & {"torch", "langchain_core", "llama_index"}


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [("langchain", "langchain_core", "langchain"), ("llamaindex", "llama_index", "llamaindex")],
)
def test_a_missing_framework_names_the_extra_to_install(module, framework, extra):
    program = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        f"try:\n    import splade_es.retrievers.{module}\n"
        "except ImportError as error:\n    print(error)"
    )
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert f"pip install 'splade-es[{extra}]'" in out.stdout, out.stderr[-500:]


# -- LlamaIndex metadata filters as engine clauses (pure) -----------------------------------


def mf(key, value, operator=FilterOperator.EQ):
    return MetadataFilter(key=key, value=value, operator=operator)


def test_metadata_filters_become_engine_clauses():
    anded = MetadataFilters(
        filters=[
            mf("topic", "med"),
            mf("topic", ["med", "bio"], FilterOperator.IN),
            mf("year", 2003, FilterOperator.GT),
            mf("year", 2003, FilterOperator.GTE),
            mf("year", 2.5, FilterOperator.LT),
            mf("day", "2020-01-01", FilterOperator.LTE),
            mf("id", "med-1"),
            mf("id", ["a", "b"], FilterOperator.IN),
        ]
    )
    assert metadata_filter_clauses(anded) == [
        {"term": {"topic": "med"}},
        {"terms": {"topic": ["med", "bio"]}},
        {"range": {"year": {"gt": 2003}}},
        {"range": {"year": {"gte": 2003}}},
        {"range": {"year": {"lt": 2.5}}},
        {"range": {"day": {"lte": "2020-01-01"}}},
        {"ids": {"values": ["med-1"]}},
        {"ids": {"values": ["a", "b"]}},
    ]
    inner = MetadataFilters(filters=[mf("a", 1), mf("b", 2)])
    ored = MetadataFilters(filters=[mf("topic", "med"), inner], condition=FilterCondition.OR)
    assert metadata_filter_clauses(ored) == [
        {
            "bool": {
                "should": [
                    {"term": {"topic": "med"}},
                    {"bool": {"filter": [{"term": {"a": 1}}, {"term": {"b": 2}}]}},
                ],
                "minimum_should_match": 1,
            }
        }
    ]
    assert metadata_filter_clauses(MetadataFilters(filters=[])) == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (mf("topic", "x", FilterOperator.NE), r"operator '!=' is not supported; use one of =="),
        (mf("topic", ["x"], FilterOperator.NIN), r"operator 'nin' is not supported"),
        (mf("text", "x", FilterOperator.TEXT_MATCH), r"operator 'text_match' is not supported"),
        (mf("topic", ["a", "b"]), r"== takes one value; for a list use operator 'in'"),
        (mf("topic", "a", FilterOperator.IN), r"'in' takes a non-empty list"),
        (mf("year", [1, 2], FilterOperator.GT), r"> takes one number, date or string"),
        (mf("score", 1.0, FilterOperator.GT), r"'score' is computed by the search"),
    ],
)
def test_unsupported_metadata_filters_are_refused(item, message):
    with pytest.raises(ValueError, match=message):
        metadata_filter_clauses(MetadataFilters(filters=[item]))


def test_a_not_condition_is_refused():
    negated = MetadataFilters(filters=[mf("a", 1)], condition=FilterCondition.NOT)
    with pytest.raises(ValueError, match=r"condition='not'\) is not supported: use AND or OR"):
        metadata_filter_clauses(negated)


# -- the retrievers on the real nodes -------------------------------------------------------


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("elasticsearch", marks=pytest.mark.es),
        pytest.param("opensearch", marks=pytest.mark.opensearch),
    ],
)
def rag(request, splade_encoder, colbert_encoder):
    """A small index with ColBERT embeddings and keyword/int metadata, on each engine, with a
    searcher and a reranker; deleted afterwards."""
    engine = request.param
    cluster = request.getfixturevalue(
        "es_cluster" if engine == "elasticsearch" else "opensearch_cluster"
    )
    names = IndexNames("rag")
    names.prefix = f"rag-{uuid.uuid4().hex[:10]}"
    index = names(cluster)
    try:
        fields = FieldNames(
            keep=("topic", "year", "tag"), types={"topic": "keyword", "year": "int"}
        )
        config = BuildConfig(
            BulkConfig(index=index, progress=False),
            fields={"topic": {"type": "keyword"}, "year": {"type": "long"}, "tag": TAG_MAPPING},
        )
        colbert = ColbertIndexing(colbert_encoder, ColbertStorage(codec="float16"))
        build_index(cluster, from_records(RECORDS, fields), splade_encoder, config, colbert)
        searcher = Searcher(cluster, splade_encoder, SearchConfig(index, include_embeddings=True))
        reranker = open_reranker(cluster, index, colbert_encoder)
        node = request.getfixturevalue(
            "es_node" if engine == "elasticsearch" else "opensearch_node"
        )
        yield searcher, reranker, node.config
    finally:
        names.cleanup()


def expected(searcher, retrieval, reranker):
    hits = search_then_rerank(searcher, QUERY, retrieval, reranker).hits
    assert hits
    return [(h.id, h.score) for h in hits]


@pytest.mark.parametrize("rerank", [False, True], ids=["first-stage", "reranked"])
@pytest.mark.parametrize("mode", MODES)
def test_langchain_returns_the_ranking_of_search_then_rerank(rag, mode, rerank):
    searcher, reranker, _ = rag
    reranker = reranker if rerank else None
    retrieval = Retrieval(k=6, mode=mode, rerank_k=4)
    retriever = SpladeRetriever(searcher=searcher, reranker=reranker, retrieval=retrieval)
    documents = retriever.invoke(QUERY)
    assert all(isinstance(d, Document) for d in documents)
    want = expected(searcher, retrieval, reranker)
    assert [(d.id, d.metadata["score"]) for d in documents] == want
    assert [d.metadata["rank"] for d in documents] == list(range(1, len(want) + 1))
    top = documents[0]
    record = next(r for r in RECORDS if r["_id"] == top.id)
    assert top.page_content == f"{record['title']}\n\n{record['text']}"
    assert top.metadata["topic"] == record["topic"] and top.metadata["year"] == record["year"]
    assert not {"colbert", "splade"} & set(top.metadata)
    if rerank:
        reranked = [d.metadata["colbert_score"] is not None for d in documents]
        assert reranked == [rank < 4 for rank in range(len(documents))]
        assert top.metadata["first_stage_rank"] >= 1
    else:
        assert all(d.metadata["colbert_score"] is None for d in documents)


def test_langchain_filters_per_call_add_to_the_default_ones_and_async(rag):
    searcher, reranker, _ = rag
    default = Retrieval(k=5, mode="hybrid", filters=[{"terms": {"topic": ["cook", "med"]}}])
    retriever = SpladeRetriever(searcher=searcher, reranker=reranker, retrieval=default)
    found = retriever.invoke(QUERY)
    assert {d.metadata["topic"] for d in found} == {"cook", "med"}
    assert found[0].id == "med-1"
    narrowed = retriever.invoke(QUERY, filters=[{"range": {"year": {"gte": 2005}}}])
    assert narrowed and all(d.metadata["year"] >= 2005 for d in narrowed)
    assert {d.metadata["topic"] for d in narrowed} <= {"cook", "med"}  # the default still holds
    assert "med-1" not in {d.id for d in narrowed}  # med-1 is of 2004
    assert retriever.invoke(QUERY, filters=[]) == found  # the default filter stays
    assert asyncio.run(retriever.ainvoke(QUERY, filters=[])) == found
    assert asyncio.run(retriever.ainvoke(QUERY)) == found


@pytest.mark.parametrize("rerank", [False, True], ids=["first-stage", "reranked"])
@pytest.mark.parametrize("mode", MODES)
def test_llamaindex_returns_the_ranking_of_search_then_rerank(rag, mode, rerank):
    searcher, reranker, _ = rag
    reranker = reranker if rerank else None
    retrieval = Retrieval(k=6, mode=mode, rerank_k=4)
    retriever = SpladeNodeRetriever(searcher, retrieval, reranker)
    nodes = retriever.retrieve(QUERY)
    want = expected(searcher, retrieval, reranker)
    assert [(n.node.node_id, n.score) for n in nodes] == want
    assert [n.node.metadata["score"] for n in nodes] == [score for _, score in want]
    top = nodes[0].node
    assert top.get_content().startswith(
        next(r["title"] for r in RECORDS if r["_id"] == top.node_id)
    )
    assert "score" not in top.get_content(metadata_mode="llm")  # scores stay out of the prompt
    assert "topic" in top.get_content(metadata_mode="llm")


def test_llamaindex_metadata_filters_and_async(rag):
    searcher, reranker, _ = rag
    topics = MetadataFilters(filters=[mf("topic", ["med", "bio"], FilterOperator.IN)])
    retriever = SpladeNodeRetriever(searcher, Retrieval(k=10), reranker, filters=topics)
    nodes = retriever.retrieve(QUERY)
    assert nodes and {n.node.metadata["topic"] for n in nodes} <= {"med", "bio"}
    later = retriever.with_filters(MetadataFilters(filters=[mf("year", 2005, FilterOperator.GTE)]))
    assert all(n.node.metadata["year"] >= 2005 for n in later.retrieve(QUERY))
    assert [n.node.node_id for n in asyncio.run(retriever.aretrieve(QUERY))] == [
        n.node.node_id for n in nodes
    ]
    with pytest.raises(ValueError, match="operator 'nin' is not supported"):
        retriever.with_filters(MetadataFilters(filters=[mf("topic", ["x"], FilterOperator.NIN)]))


def test_llamaindex_exact_filters_on_a_text_field_use_its_keyword_subfield(rag):
    searcher, _, _ = rag
    tagged = MetadataFilters(filters=[mf("tag", "Topic med")])
    nodes = SpladeNodeRetriever(searcher, Retrieval(k=10), filters=tagged).retrieve(QUERY)
    assert nodes and {n.node.metadata["topic"] for n in nodes} == {"med"}
    both = MetadataFilters(filters=[mf("tag", ["Topic med", "Topic bio"], FilterOperator.IN)])
    nodes = SpladeNodeRetriever(searcher, Retrieval(k=10), filters=both).retrieve(QUERY)
    assert nodes and {n.node.metadata["topic"] for n in nodes} == {"med", "bio"}
    titled = MetadataFilters(filters=[mf("title", "Vaccines")])
    with pytest.raises(
        ValueError,
        match=r"field 'title' is mapped as text \(analysed\), so == and 'in' would match no "
        r"stored value: index it as a keyword \(--keep-field title:keyword\)",
    ):
        SpladeNodeRetriever(searcher, Retrieval(k=10), filters=titled)


def test_exact_filters_target_keyword_subfields_given_the_mapping():
    fields = {
        "tag": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "meta": {"properties": {"author": {"type": "text", "fields": {"k": {"type": "keyword"}}}}},
        "topic": {"type": "keyword"},
    }
    filters = MetadataFilters(
        filters=[mf("tag", "a"), mf("meta.author", ["b"], FilterOperator.IN), mf("topic", "c")]
    )
    assert metadata_filter_clauses(filters, fields) == [
        {"term": {"tag.raw": "a"}},
        {"terms": {"meta.author.k": ["b"]}},
        {"term": {"topic": "c"}},
    ]
    one = MetadataFilters(filters=[mf("tag.raw", "a")])
    assert metadata_filter_clauses(one, fields) == [{"term": {"tag.raw": "a"}}]
    body = MetadataFilters(filters=[mf("body", "x")])
    with pytest.raises(ValueError, match=r"--keep-field body:keyword"):
        metadata_filter_clauses(body, {"body": {"type": "text"}})


def test_a_stored_field_named_like_a_score_is_refused_at_construction(
    es_cluster, splade_encoder, index_names
):
    index_names.prefix = f"rag-{uuid.uuid4().hex[:10]}"
    index = index_names(es_cluster)
    records = [dict(d, score=i) for i, d in enumerate(DOCS[:4])]
    config = BuildConfig(BulkConfig(index, progress=False), fields={"score": {"type": "long"}})
    fields = FieldNames(keep=("score",), types={"score": "int"})
    build_index(es_cluster, from_records(records, fields), splade_encoder, config)
    searcher = Searcher(es_cluster, splade_encoder, SearchConfig(index))
    message = (
        rf"Index '{index}' stores fields \['score'\] whose names the retriever uses for its "
        r"scores .*: leave them out with SearchConfig\(source_includes=\[\.\.\.\]\)"
    )
    with pytest.raises(ValueError, match=message):
        SpladeRetriever(searcher=searcher)
    with pytest.raises(ValueError, match=message):
        SpladeNodeRetriever(searcher)
    kept = Searcher(
        es_cluster, splade_encoder, SearchConfig(index, source_includes=["title", "text"])
    )
    assert SpladeRetriever(searcher=kept, retrieval=Retrieval(k=2)).invoke("aspirin")


def test_text_fields_the_index_lacks_are_refused_at_construction(rag):
    searcher, _, _ = rag
    with pytest.raises(ValueError, match=r"has no field 'body'"):
        SpladeRetriever(searcher=searcher, pages=PageFields(text=("title", "body")))
    with pytest.raises(ValueError, match=r"has no field 'body'"):
        SpladeNodeRetriever(searcher, pages=PageFields(text=("body",)))
    pages = PageFields(text=("text",))
    retriever = SpladeRetriever(searcher=searcher, pages=pages, retrieval=Retrieval(k=1))
    document = retriever.invoke(QUERY)[0]
    assert document.page_content == next(r["text"] for r in RECORDS if r["_id"] == document.id)
    assert document.metadata["title"]  # the title is metadata now


def test_from_cluster_loads_the_models_the_index_records(rag):
    searcher, reranker, config = rag
    index = searcher.config.index
    retrieval = Retrieval(k=4, mode="hybrid", rerank_k=4)
    retriever = SpladeRetriever.from_cluster(config, index, retrieval, rerank=True)
    try:
        want = expected(searcher, retrieval, reranker)
        got = [(d.id, d.metadata["score"]) for d in retriever.invoke(QUERY)]
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-5)
    finally:
        retriever.searcher.cluster.close()
    nodes = SpladeNodeRetriever.from_cluster(config, index, Retrieval(k=3))
    try:
        assert [n.node.node_id for n in nodes.retrieve(QUERY)] == [
            i for i, _ in expected(searcher, Retrieval(k=3), None)
        ]
    finally:
        nodes.searcher.cluster.close()
