"""Pure builders of the kNN stages: vector fields and queries, the knn index setting, fusion of
several lists, stage names (search, CLI, evaluation). No cluster, no model."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from colbert_rerank.fusion import Fusion, fuse, fuse_lists, min_max
from colbert_rerank.muvera import DEFAULT_MUVERA
from splade_es.cli.stages import STAGE, split_stage
from splade_es.cluster.mapping import (
    RESERVED_META_KEYS,
    VECTORS_META_KEY,
    IndexLayout,
    index_body,
)
from splade_es.cluster.vectors import (
    MAX_DIMS,
    QUANTIZATIONS,
    VectorField,
    knn_query,
    vector_property,
)
from splade_es.evaluation.evaluator import EvalConfig
from splade_es.evaluation.stage_plan import (
    StageNeeds,
    check_stages,
    first_stage_of,
    vectors_tag,
)
from splade_es.search.stages import SOURCES, sources

ENGINES = ("elasticsearch", "opensearch")


# --- VectorField -------------------------------------------------------------------------------


def test_vector_field_defaults():
    field = VectorField("dense", 384)
    assert (field.quantization, field.m, field.ef_construction) == ("int8", 16, 100)
    assert QUANTIZATIONS == ("none", "int8", "int4", "bbq")
    assert dict(MAX_DIMS) == {"elasticsearch": 4096, "opensearch": 16000}


@pytest.mark.parametrize("name", ["", "a.b", ".dense", "dense."])
def test_vector_field_refuses_empty_or_dotted_name(name):
    with pytest.raises(ValueError, match=r"expected a non-empty name without dots") as error:
        VectorField(name, 8)
    assert repr(name) in str(error.value)


@pytest.mark.parametrize("attribute", ["dims", "m", "ef_construction"])
@pytest.mark.parametrize("value", [0, -3, 1.5, True, "8"])
def test_vector_field_refuses_non_positive_ints(attribute, value):
    kwargs = {"dims": 8, attribute: value}
    with pytest.raises(ValueError, match=rf"^{attribute}={re.escape(repr(value))}: expected a "):
        VectorField("dense", **kwargs)


@pytest.mark.parametrize("quantization", ["fp16", "INT8", "", None, "binary"])
def test_vector_field_refuses_unknown_quantization(quantization):
    expected = re.escape(f"quantization={quantization!r}: expected one of none, int8, int4, bbq.")
    with pytest.raises(ValueError, match=expected):
        VectorField("dense", 8, quantization=quantization)


# --- check_engine ------------------------------------------------------------------------------


def test_check_engine_elasticsearch_dims_limit():
    VectorField("v", 4096).check_engine("elasticsearch")
    field = VectorField("v", 4097)
    with pytest.raises(
        ValueError, match=r"'v' has 4097 dimensions; elasticsearch indexes at most 4096"
    ):
        field.check_engine("elasticsearch")
    field.check_engine("opensearch")  # within OpenSearch's limit


def test_check_engine_opensearch_dims_limit():
    VectorField("v", 16000).check_engine("opensearch")
    with pytest.raises(ValueError, match=r"16001 dimensions; opensearch indexes at most 16000"):
        VectorField("v", 16001).check_engine("opensearch")
    with pytest.raises(ValueError, match=r"at most 4096: .*final_dim <= 4096"):
        VectorField("v", 16000).check_engine("elasticsearch")


@pytest.mark.parametrize("quantization", ["int4", "bbq"])
def test_check_engine_refuses_es_only_quantization_on_opensearch(quantization):
    field = VectorField("v", 64, quantization=quantization)
    field.check_engine("elasticsearch")
    with pytest.raises(ValueError, match=rf"quantization='{quantization}' is Elasticsearch-only"):
        field.check_engine("opensearch")


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_check_engine_opensearch_accepts_none_and_int8(quantization):
    VectorField("v", 64, quantization=quantization).check_engine("opensearch")


@pytest.mark.parametrize("engine", ["solr", "", "Elasticsearch", "es"])
def test_check_engine_refuses_unknown_engine(engine):
    expected = re.escape(f"Unknown engine {engine!r}: expected one of elasticsearch, opensearch.")
    with pytest.raises(ValueError, match=expected):
        VectorField("v", 8).check_engine(engine)
    with pytest.raises(ValueError, match=r"Unknown engine"):
        vector_property(VectorField("v", 8), engine)


# --- vector_property ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantization", "es_type"),
    [("int8", "int8_hnsw"), ("none", "hnsw"), ("int4", "int4_hnsw"), ("bbq", "bbq_hnsw")],
)
def test_vector_property_elasticsearch(quantization, es_type):
    field = VectorField("dense", 384, quantization=quantization, m=32, ef_construction=200)
    assert vector_property(field, "elasticsearch") == {
        "type": "dense_vector",
        "dims": 384,
        "index": True,
        "similarity": "max_inner_product",
        "index_options": {"type": es_type, "m": 32, "ef_construction": 200},
    }


def test_vector_property_elasticsearch_defaults():
    prop = vector_property(VectorField("dense", 384), "elasticsearch")
    assert prop["index_options"] == {"type": "int8_hnsw", "m": 16, "ef_construction": 100}


def test_vector_property_opensearch_int8_uses_scalar_quantiser():
    field = VectorField("muvera", 1024, m=24, ef_construction=128)
    assert vector_property(field, "opensearch") == {
        "type": "knn_vector",
        "dimension": 1024,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "innerproduct",
            "parameters": {"m": 24, "ef_construction": 128, "encoder": {"name": "sq"}},
        },
    }


def test_vector_property_opensearch_float_has_no_encoder():
    prop = vector_property(VectorField("dense", 384, quantization="none"), "opensearch")
    assert prop["method"]["parameters"] == {"m": 16, "ef_construction": 100}
    assert prop["type"] == "knn_vector"
    assert prop["dimension"] == 384


@pytest.mark.parametrize("quantization", ["int4", "bbq"])
def test_vector_property_opensearch_refuses_es_only_quantization(quantization):
    with pytest.raises(ValueError, match=r"Elasticsearch-only"):
        vector_property(VectorField("dense", 64, quantization=quantization), "opensearch")


def test_vector_property_refuses_too_many_dims():
    with pytest.raises(ValueError, match=r"at most 4096"):
        vector_property(VectorField("dense", 5000), "elasticsearch")
    assert vector_property(VectorField("dense", 5000), "opensearch")["dimension"] == 5000


def test_vector_property_returns_fresh_dicts():
    field = VectorField("dense", 8)
    first = vector_property(field, "opensearch")
    first["method"]["parameters"]["m"] = 99
    assert vector_property(field, "opensearch")["method"]["parameters"]["m"] == 16


# --- knn_query ---------------------------------------------------------------------------------

VECTOR = np.array([0.5, -1.25, 2.0], dtype=np.float32)


def test_knn_query_elasticsearch():
    body = knn_query("dense", VECTOR, k=10, candidates=100, engine="elasticsearch")
    assert body == {
        "knn": {
            "field": "dense",
            "query_vector": [0.5, -1.25, 2.0],
            "k": 10,
            "num_candidates": 100,
        }
    }
    values = body["knn"]["query_vector"]
    assert all(type(v) is float for v in values)


def test_knn_query_opensearch():
    body = knn_query("dense", VECTOR, k=10, candidates=100, engine="opensearch")
    assert body == {
        "knn": {
            "dense": {
                "vector": [0.5, -1.25, 2.0],
                "k": 10,
                "method_parameters": {"ef_search": 100},
            }
        }
    }
    assert all(type(v) is float for v in body["knn"]["dense"]["vector"])


@pytest.mark.parametrize("engine", ENGINES)
def test_knn_query_values_are_plain_floats_from_any_dtype(engine):
    for vector in (
        np.array([1, 2, 3], dtype=np.int64),
        np.array([0.1, 0.2, 0.3], dtype=np.float64),
        np.array([[1.0, 2.0, 3.0]], dtype=np.float16),  # [1, dims] is flattened
        [1.0, 2.0, 3.0],
    ):
        body = knn_query("v", vector, 5, 50, engine)
        clause = body["knn"] if engine == "elasticsearch" else body["knn"]["v"]
        values = clause["query_vector" if engine == "elasticsearch" else "vector"]
        assert len(values) == 3
        assert all(type(v) is float for v in values)
        expected = np.asarray(vector, dtype=np.float32).ravel().tolist()
        assert values == expected


@pytest.mark.parametrize(
    ("k", "candidates", "beam"), [(10, 100, 100), (100, 10, 100), (7, 7, 7), (1, 1000, 1000)]
)
def test_knn_query_beam_is_at_least_k(k, candidates, beam):
    es = knn_query("v", VECTOR, k, candidates, "elasticsearch")["knn"]
    assert (es["k"], es["num_candidates"]) == (k, beam)
    os_ = knn_query("v", VECTOR, k, candidates, "opensearch")["knn"]["v"]
    assert (os_["k"], os_["method_parameters"]["ef_search"]) == (k, beam)


FILTERS = ({"term": {"lang": "en"}}, {"range": {"year": {"gte": 2020}}})


def test_knn_query_elasticsearch_filters_are_a_list():
    body = knn_query("v", VECTOR, 10, 100, "elasticsearch", filters=FILTERS)
    assert body["knn"]["filter"] == list(FILTERS)
    assert isinstance(body["knn"]["filter"], list)


def test_knn_query_opensearch_filters_are_a_bool_filter():
    body = knn_query("v", VECTOR, 10, 100, "opensearch", filters=FILTERS)
    assert body["knn"]["v"]["filter"] == {"bool": {"filter": list(FILTERS)}}
    assert isinstance(body["knn"]["v"]["filter"]["bool"]["filter"], list)


@pytest.mark.parametrize("filters", [(), []])
def test_knn_query_without_filters_has_no_filter_key(filters):
    es = knn_query("v", VECTOR, 10, 100, "elasticsearch", filters=filters)
    assert "filter" not in es["knn"]
    os_ = knn_query("v", VECTOR, 10, 100, "opensearch", filters=filters)
    assert "filter" not in os_["knn"]["v"]


# --- index_body: index.knn ---------------------------------------------------------------------


def test_index_body_knn_sets_index_knn():
    body = index_body(IndexLayout(knn=True), {"field": "splade"})
    assert body["settings"]["index"]["knn"] is True
    assert "index.knn" not in body["settings"]


def test_index_body_without_knn_has_no_knn_setting():
    body = index_body(IndexLayout(), {"field": "splade"})
    settings = body.get("settings", {})
    assert "index.knn" not in settings
    assert "knn" not in settings.get("index", {})


def test_index_body_knn_replaces_a_flat_template_setting_and_keeps_others():
    template = {"settings": {"index.knn": False, "index": {"refresh_interval": "5s"}}}
    body = index_body(IndexLayout(knn=True, shards=2), {"field": "splade"}, template=template)
    assert "index.knn" not in body["settings"]
    assert body["settings"]["index"] == {
        "refresh_interval": "5s",
        "number_of_shards": 2,
        "knn": True,
    }
    assert template["settings"]["index.knn"] is False  # the caller's template is not modified


def test_vectors_meta_key_is_reserved():
    assert VECTORS_META_KEY in RESERVED_META_KEYS
    template = {"mappings": {"_meta": {VECTORS_META_KEY: {}}}}
    with pytest.raises(ValueError, match=rf"_meta key '{VECTORS_META_KEY}' is written by"):
        index_body(IndexLayout(), {"field": "splade"}, template=template)


def test_index_body_keeps_the_vectors_meta_block():
    vectors = {"dense": {"field": "dense", "model": {"model": "m"}}}
    body = index_body(IndexLayout(knn=True), {"field": "splade"}, {VECTORS_META_KEY: vectors})
    assert body["mappings"]["_meta"][VECTORS_META_KEY] == vectors
    assert body["mappings"]["_meta"]["splade_es"] == {"field": "splade"}


# --- fuse_lists --------------------------------------------------------------------------------

RANKINGS = [
    {"a": 9.0, "b": 5.0, "c": 1.0},  # ranks a1 b2 c3
    {"c": 0.9, "d": 0.8, "a": 0.1},  # ranks c1 d2 a3
    {"b": 30.0, "c": 20.0, "e": 10.0, "a": 0.0},  # ranks b1 c2 e3 a4
]


def test_fuse_lists_rrf_equals_hand_computation():
    k = 60
    third = 1 / 3
    expected = {
        "a": third * (1 / (k + 1) + 1 / (k + 3) + 1 / (k + 4)),
        "b": third * (1 / (k + 2) + 1 / (k + 1)),
        "c": third * (1 / (k + 3) + 1 / (k + 1) + 1 / (k + 2)),
        "d": third * (1 / (k + 2)),
        "e": third * (1 / (k + 3)),
    }
    fused = fuse_lists(RANKINGS, Fusion("rrf"))
    assert fused.keys() == expected.keys()
    for key, value in expected.items():
        assert fused[key] == pytest.approx(value, rel=1e-12)
    assert sorted(fused, key=lambda d: -fused[d]) == ["c", "a", "b", "d", "e"]


def test_fuse_lists_rrf_custom_k_and_weights():
    weights = [0.5, 0.2, 0.3]
    k = 10
    expected = {
        "a": 0.5 / (k + 1) + 0.2 / (k + 3) + 0.3 / (k + 4),
        "b": 0.5 / (k + 2) + 0.3 / (k + 1),
        "c": 0.5 / (k + 3) + 0.2 / (k + 1) + 0.3 / (k + 2),
        "d": 0.2 / (k + 2),
        "e": 0.3 / (k + 3),
    }
    fused = fuse_lists(RANKINGS, Fusion("rrf", rrf_k=k), weights=weights)
    assert fused == pytest.approx(expected, rel=1e-12)


def test_fuse_lists_zero_weight_drops_a_ranking():
    fused = fuse_lists(RANKINGS, Fusion("rrf"), weights=[1.0, 0.0, 0.0])
    assert fused["d"] == 0.0
    assert fused["e"] == 0.0
    assert fused["a"] == pytest.approx(1 / 61)


def test_fuse_lists_weighted_is_sum_of_weighted_min_max():
    weights = [0.2, 0.3, 0.5]
    normed = [min_max(r) for r in RANKINGS]
    docs = {d for r in RANKINGS for d in r}
    expected = {
        d: sum(w * n.get(d, 0.0) for w, n in zip(weights, normed, strict=True)) for d in docs
    }
    fused = fuse_lists(RANKINGS, Fusion("weighted"), weights=weights)
    assert fused == pytest.approx(expected, rel=1e-12)
    # by hand for one document: a is the top of list 1 (1.0), c is the top of list 2 so
    # a gets (0.1-0.1)/(0.9-0.1) = 0 there, and a is the bottom of list 3 (0.0)
    assert fused["a"] == pytest.approx(0.2 * 1.0 + 0.3 * 0.0 + 0.5 * 0.0)
    assert fused["c"] == pytest.approx(0.2 * 0.0 + 0.3 * 1.0 + 0.5 * (20 - 0) / 30)


def test_fuse_lists_weighted_equal_shares_by_default():
    fused = fuse_lists(RANKINGS, Fusion("weighted"))
    explicit = fuse_lists(RANKINGS, Fusion("weighted"), weights=[1 / 3] * 3)
    assert fused == pytest.approx(explicit)


@pytest.mark.parametrize("method", ["rrf", "weighted"])
def test_fuse_lists_missing_document_gets_zero_from_that_list(method):
    fusion = Fusion(method)
    with_x = fuse_lists([{"x": 2.0, "y": 1.0}, {"y": 5.0, "z": 1.0}], fusion, [1.0, 1.0])
    only_first = fuse_lists([{"x": 2.0, "y": 1.0}], fusion, [1.0])
    assert with_x["x"] == pytest.approx(only_first["x"])  # nothing from the second list
    second_only = fuse_lists([{"y": 5.0, "z": 1.0}], fusion, [1.0])
    assert with_x["z"] == pytest.approx(second_only["z"])


def test_fuse_lists_single_list_and_empty_lists():
    assert fuse_lists([], Fusion("rrf")) == {}
    assert fuse_lists([], Fusion("weighted")) == {}
    assert fuse_lists([{}, {}], Fusion("rrf")) == {}
    assert fuse_lists([{"a": 1.0}, {}], Fusion("weighted")) == {"a": pytest.approx(0.5)}
    assert fuse_lists([{"a": 2.0, "b": 1.0}], Fusion("rrf")) == pytest.approx(
        {"a": 1 / 61, "b": 1 / 62}
    )


def test_fuse_lists_refuses_replace():
    with pytest.raises(ValueError, match=r"fusion='replace' keeps one ranking: use 'rrf'"):
        fuse_lists(RANKINGS, Fusion("replace"))
    with pytest.raises(ValueError, match=r"fusion='replace'"):
        fuse_lists([], Fusion("replace"))


@pytest.mark.parametrize(
    "weights",
    [
        [0.5, 0.5],
        [0.2, 0.3, 0.4, 0.1],
        [],
        [0.5, -0.1, 0.6],
        [math.nan, 0.5, 0.5],
        [math.inf, 1, 1],
    ],
)
def test_fuse_lists_refuses_bad_weights(weights):
    expected = re.escape(f"weights={weights!r}: expected 3 finite numbers >= 0, one per ranking.")
    for method in ("rrf", "weighted"):
        with pytest.raises(ValueError, match=expected):
            fuse_lists(RANKINGS, Fusion(method), weights=weights)


def test_fuse_lists_rrf_orders_like_fuse():
    first = {"a": 3.0, "b": 2.5, "c": 1.0, "d": 0.5}
    second = {"c": 9.0, "e": 7.0, "a": 4.0, "f": 1.0}
    fusion = Fusion("rrf")
    pair = fuse(first, second, fusion)
    many = fuse_lists([first, second], fusion)
    assert many.keys() == pair.keys()
    assert sorted(many, key=lambda d: -many[d]) == sorted(pair, key=lambda d: -pair[d])
    for key in pair:  # equal shares: half of fuse's sum
        assert many[key] == pytest.approx(pair[key] / 2)


def test_fuse_lists_weighted_matches_fuse_at_half_weight():
    first = {"a": 3.0, "b": 2.5, "c": 1.0}
    second = {"c": 9.0, "e": 7.0, "a": 4.0}
    pair = fuse(first, second, Fusion("weighted", weight=0.5))
    assert fuse_lists([first, second], Fusion("weighted")) == pytest.approx(pair)
    pair = fuse(first, second, Fusion("weighted", weight=0.8))
    assert fuse_lists([first, second], Fusion("weighted"), [0.2, 0.8]) == pytest.approx(pair)


# --- search stages: sources --------------------------------------------------------------------


def test_sources_joined_names():
    assert sources("splade|dense|muvera") == ("splade", "dense", "muvera")
    assert sources("muvera|bm25") == ("muvera", "bm25")
    assert sources("hybrid") == ("bm25", "splade")


@pytest.mark.parametrize("name", SOURCES)
def test_sources_single_names(name):
    assert sources(name) == (name,)


@pytest.mark.parametrize(
    "mode",
    [
        "colbert",
        "splade|colbert",
        "SPLADE",
        "splade|",
        "|splade",
        "splade||dense",
        "splade dense",
        "hybrid|dense",
        "splade+colbert",
        "splade-idf",
        "",
        "splade|splade",
        "dense|muvera|dense",
    ],
)
def test_sources_refuses_unknown_repeated_or_empty(mode):
    expected = (
        re.escape(f"Stage {mode!r}: expected one of splade, bm25, dense, muvera")
        + r" .*\(each once\)"
    )
    with pytest.raises(ValueError, match=expected):
        sources(mode)


@pytest.mark.parametrize("mode", [None, 3, ("splade",), b"splade"])
def test_sources_refuses_non_str(mode):
    with pytest.raises(ValueError, match=re.escape(f"mode={mode!r}: expected a stage name")):
        sources(mode)


# --- CLI stages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("splade|muvera+colbert", ("splade|muvera", True)),
        ("splade", ("splade", False)),
        ("hybrid+colbert", ("hybrid", True)),
        ("hybrid", ("hybrid", False)),
        ("bm25+colbert", ("bm25", True)),
        ("dense", ("dense", False)),
        ("muvera|dense+colbert", ("muvera|dense", True)),
    ],
)
def test_split_stage(stage, expected):
    assert split_stage(stage) == expected


@pytest.mark.parametrize(
    "stage",
    [
        "colbert",
        "+colbert",
        "",
        "splade+colbert+colbert",
        "splade|splade+colbert",
        "hybrid|dense",
        "splade-idf",
        "splade+Colbert",
        "colbert+splade",
    ],
)
def test_split_stage_refuses_bad_names(stage):
    with pytest.raises(ValueError, match=r"expected one of splade, bm25, dense, muvera"):
        split_stage(stage)


@click.command()
@click.option("--mode", type=STAGE, default="splade")
def _stage_command(mode: str) -> None:
    click.echo(f"mode={mode}")


@pytest.mark.parametrize("mode", ["splade|dense+colbert", "hybrid", "muvera"])
def test_stage_param_type_accepts(mode):
    result = CliRunner().invoke(_stage_command, ["--mode", mode])
    assert result.exit_code == 0, result.output
    assert result.output == f"mode={mode}\n"


def test_stage_param_type_default():
    result = CliRunner().invoke(_stage_command, [])
    assert result.exit_code == 0, result.output
    assert result.output == "mode=splade\n"


@pytest.mark.parametrize("mode", ["colbert", "splade|splade", "dense+rerank"])
def test_stage_param_type_refuses_bad_values(mode):
    result = CliRunner().invoke(_stage_command, ["--mode", mode])
    assert result.exit_code == 2
    assert "Invalid value for '--mode'" in result.output
    assert f"Stage {mode.removesuffix('+colbert')!r}: expected one of" in result.output
    assert STAGE.name == "STAGE"


# --- evaluation stage plan ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stages", "needs"),
    [
        (("splade", "dense", "splade|muvera+colbert"), StageNeeds(True, True, True)),
        (("bm25", "splade"), StageNeeds()),
        (("splade+colbert",), StageNeeds(reranks=True)),
        (("dense",), StageNeeds(dense=True)),
        (("muvera",), StageNeeds(muvera=True)),
        (("splade|dense",), StageNeeds(dense=True)),
        (("splade-idf+colbert", "hybrid"), StageNeeds(reranks=True)),
        (("hybrid+colbert", "bm25|dense"), StageNeeds(reranks=True, dense=True)),
    ],
)
def test_check_stages(stages, needs):
    assert check_stages(stages) == needs


def test_stage_needs_colbert():
    assert not StageNeeds().colbert
    assert not StageNeeds(dense=True).colbert
    assert StageNeeds(reranks=True).colbert
    assert StageNeeds(muvera=True).colbert  # the MUVERA query is ColBERT's tokens


@pytest.mark.parametrize(
    "stages",
    [
        ("splade", "colbert"),
        ("splade-idf|dense",),
        ("+colbert",),
        ("splade|splade",),
        ("SPLADE",),
        ("bm25+colbert+colbert",),
    ],
)
def test_check_stages_refuses_unknown(stages):
    bad = [s for s in stages if s != "splade"]
    with pytest.raises(ValueError, match=re.escape(f"Unknown stages {bad}: choose from bm25, ")):
        check_stages(stages)


def test_check_stages_refuses_empty():
    with pytest.raises(ValueError, match=r"Unknown stages \(none given\): choose from"):
        check_stages(())


@pytest.mark.parametrize(
    ("stage", "first"),
    [
        ("splade-idf+colbert", "splade"),
        ("splade-idf", "splade"),
        ("splade|dense+colbert", "splade|dense"),
        ("bm25", "bm25"),
        ("hybrid+colbert", "hybrid"),
        ("muvera", "muvera"),
    ],
)
def test_first_stage_of(stage, first):
    assert first_stage_of(stage) == first


class _Dense:
    """A stand-in for the dense encoder: vectors_tag only reads its fingerprint."""

    def fingerprint(self):
        return {"weights_sha256": "abcdef123"}


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_vectors_tag_without_vectors_is_empty(quantization):
    assert vectors_tag(StageNeeds(), None, quantization) == ""
    assert vectors_tag(StageNeeds(reranks=True), _Dense(), quantization) == ""


MV = "-mv" + hashlib.sha256(repr(DEFAULT_MUVERA).encode()).hexdigest()[:6]


@pytest.mark.parametrize(
    ("needs", "dense", "quantization", "tag"),
    [
        (StageNeeds(muvera=True), None, "int8", MV),
        (StageNeeds(muvera=True), None, "bbq", MV + "-bbq"),
        (StageNeeds(dense=True), _Dense(), "int8", "-dnabcdef"),
        (StageNeeds(dense=True), _Dense(), "none", "-dnabcdef-none"),
        (StageNeeds(dense=True, muvera=True), _Dense(), "int8", "-dnabcdef" + MV),
        (StageNeeds(dense=True, muvera=True), _Dense(), "int4", "-dnabcdef" + MV + "-int4"),
        (StageNeeds(dense=True), None, "bbq", ""),
        (StageNeeds(muvera=True), _Dense(), "int8", MV),
    ],
)
def test_vectors_tag(needs, dense, quantization, tag):
    assert vectors_tag(needs, dense, quantization) == tag


# --- EvalConfig --------------------------------------------------------------------------------

DATASET = Path("beir/scifact")


def test_eval_config_accepts_fused_stages():
    config = EvalConfig(DATASET, stages=("splade|dense|muvera+colbert",))
    assert config.needs == StageNeeds(reranks=True, dense=True, muvera=True)
    assert config.reranks


@pytest.mark.parametrize(
    ("stages", "reranks", "dense", "muvera"),
    [
        (("bm25", "splade"), False, False, False),
        (("dense",), False, True, False),
        (("muvera",), True, False, True),  # ColBERT runs for the MUVERA query
        (("splade|dense", "splade+colbert"), True, True, False),
        (("hybrid", "splade-idf"), False, False, False),
    ],
)
def test_eval_config_needs_and_reranks(stages, reranks, dense, muvera):
    config = EvalConfig(DATASET, stages=stages)
    assert config.reranks is reranks
    assert (config.needs.dense, config.needs.muvera) == (dense, muvera)


@pytest.mark.parametrize("stages", [("splade", "nope"), (), ("dense|dense",)])
def test_eval_config_refuses_unknown_stages(stages):
    with pytest.raises(ValueError, match=r"Unknown stages"):
        EvalConfig(DATASET, stages=stages)


@pytest.mark.parametrize("value", [0, -1, True, 2.5])
def test_eval_config_knn_candidates_must_be_positive(value):
    with pytest.raises(
        ValueError, match=re.escape(f"knn_candidates={value!r}: expected a positive integer.")
    ):
        EvalConfig(DATASET, knn_candidates=value)
    assert EvalConfig(DATASET, knn_candidates=1).knn_candidates == 1


def test_eval_config_refuses_an_unknown_quantization():
    with pytest.raises(ValueError, match=r"quantization='fp16': expected one of none, int8"):
        EvalConfig(Path("x"), quantization="fp16")
