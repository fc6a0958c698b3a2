"""Index templates: the packaged ones in mappings/, user templates kept whole, clashes refused."""

from __future__ import annotations

import json

import pytest

from splade_es.cluster.admin import get_index
from splade_es.cluster.companion import codebook_index_name
from splade_es.cluster.mapping import (
    IndexLayout,
    check_template,
    index_body,
    load_template,
    packaged_template,
    splade_meta,
)
from splade_es.indexing.splade_fields import prepare_index

FINGERPRINT = {"weights_sha256": "w" * 16, "tokenizer_sha256": "t" * 16}

ANALYZED = {
    "settings": {
        "index": {"number_of_shards": 3, "refresh_interval": "5s"},
        "analysis": {
            # standard with stopwords: in every node, even without the analysis-common module
            "analyzer": {"no_the": {"type": "standard", "stopwords": ["the"]}}
        },
    },
    "mappings": {
        "_meta": {"owner": "search-team"},
        "properties": {
            "text": {"type": "text", "analyzer": "no_the"},
            "year": {"type": "integer"},
            "tags": {"type": "keyword"},
        },
    },
}


def meta(layout: IndexLayout) -> dict:
    return splade_meta(
        model="m",
        fingerprint=FINGERPRINT,
        pooling="max",
        max_length=256,
        pruning="none",
        layout=layout,
    )


def body_for(template, layout=None, extra_meta=None):
    layout = layout or IndexLayout()
    return index_body(layout, meta(layout), extra_meta, template=template)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_templates():
    index = packaged_template("index")
    assert index["mappings"]["properties"] == {"title": {"type": "text"}, "text": {"type": "text"}}
    assert packaged_template("codebook") == {
        "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
        "mappings": {
            "dynamic": False,
            "properties": {
                "codebook": {"type": "binary", "doc_values": False},
                "projection": {"type": "binary", "doc_values": False},
            },
        },
    }
    packaged_template("index")["mappings"]["properties"].clear()  # a copy each time
    assert packaged_template("index")["mappings"]["properties"]
    with pytest.raises(ValueError, match=r"No packaged template 'splade'.*codebook, index"):
        packaged_template("splade")
    assert codebook_index_name("docs") == "docs-colbert-codebook"


def test_default_template_keeps_only_the_layout_text_fields():
    body = body_for(None, IndexLayout(text_fields=("text",), field="terms"))
    assert body["mappings"]["properties"] == {
        "text": {"type": "text"},
        "terms": {"type": "rank_features"},
    }
    assert body["settings"] == {"index": {"number_of_shards": 1}}
    fixed = body_for(None, IndexLayout(replicas=2))["settings"]  # a count replaces the range
    assert fixed == {"index": {"number_of_shards": 1, "number_of_replicas": 2}}


def test_user_template_keeps_analyzer_fields_settings_and_meta():
    body = body_for(ANALYZED, IndexLayout(mapping_type="sparse_vector"))
    properties = body["mappings"]["properties"]
    assert properties["text"] == {"type": "text", "analyzer": "no_the"}
    assert properties["title"] == {"type": "text"}  # a layout text field the template lacks
    assert properties["year"] == {"type": "integer"}
    assert properties["tags"] == {"type": "keyword"}
    assert properties["splade"] == {"type": "sparse_vector"}
    assert body["settings"] == ANALYZED["settings"]
    assert body["mappings"]["_meta"]["owner"] == "search-team"
    assert body["mappings"]["_meta"]["splade_es"]["mapping_type"] == "sparse_vector"
    assert ANALYZED["mappings"]["properties"]["text"] == {"type": "text", "analyzer": "no_the"}
    assert "splade" not in ANALYZED["mappings"]["properties"]  # the caller's dict is untouched


def test_extra_properties_and_meta_are_added():
    layout = IndexLayout(extra_properties={"colbert": {"type": "binary"}})
    body = body_for(ANALYZED, layout, extra_meta={"colbert_rerank": {"dim": 8}})
    assert body["mappings"]["properties"]["colbert"] == {"type": "binary"}
    assert set(body["mappings"]["_meta"]) == {"owner", "colbert_rerank", "splade_es"}


@pytest.mark.parametrize(
    ("shards", "replicas", "expected"),
    [
        (None, None, {"number_of_shards": 3, "refresh_interval": "5s"}),
        (2, None, {"number_of_shards": 2, "refresh_interval": "5s"}),
        (None, 0, {"number_of_shards": 3, "refresh_interval": "5s", "number_of_replicas": 0}),
    ],
)
def test_shards_and_replicas_override_only_when_given(shards, replicas, expected):
    body = body_for(ANALYZED, IndexLayout(shards=shards, replicas=replicas))
    assert body["settings"]["index"] == expected
    assert body["settings"]["analysis"] == ANALYZED["settings"]["analysis"]


def test_flat_setting_spellings_are_replaced_not_duplicated():
    template = {"settings": {"number_of_shards": 4, "index.number_of_replicas": 2}}
    body = body_for(template, IndexLayout(shards=1, replicas=0))
    assert body["settings"] == {"index": {"number_of_shards": 1, "number_of_replicas": 0}}
    assert body_for(template)["settings"] == template["settings"]


@pytest.mark.parametrize(
    ("template", "layout", "match"),
    [
        (
            {"mappings": {"properties": {"splade": {"type": "rank_features"}}}},
            IndexLayout(),
            r"Template field 'splade' clashes with the SPLADE field.*choose another SPLADE",
        ),
        (
            {"mappings": {"properties": {"colbert": {"type": "keyword"}}}},
            IndexLayout(extra_properties={"colbert": {"type": "binary"}}),
            r"Template field 'colbert' clashes with a field the package adds.*remove 'colbert'",
        ),
        (
            {"mappings": {"properties": {"text": {"type": "keyword"}}}},
            IndexLayout(),
            r"Template field 'text' is \{\"type\": \"keyword\"\}.*map it as",
        ),
        (
            {"mappings": {"properties": {"title": {"type": "text", "index": False}}}},
            IndexLayout(),
            r"Template field 'title'.*BM25 text field",
        ),
        (
            {"mappings": {"_meta": {"splade_es": {}}}},
            IndexLayout(),
            r"_meta key 'splade_es' is written by the package.*remove '_meta.splade_es'",
        ),
        (
            {"mappings": {"_meta": {"colbert_rerank": {}}}},
            IndexLayout(),
            r"_meta key 'colbert_rerank'",
        ),
        (
            {},
            IndexLayout(extra_properties={"splade": {"type": "binary"}}),
            r"Extra field 'splade' clashes with the SPLADE field",
        ),
    ],
)
def test_clashes_are_refused(template, layout, match):
    with pytest.raises(ValueError, match=match):
        body_for(template, layout)


def test_extra_meta_key_in_template_is_refused():
    with pytest.raises(ValueError, match="_meta key 'other'"):
        body_for({"mappings": {"_meta": {"other": 1}}}, extra_meta={"other": 2})


def test_load_template_reads_a_file(tmp_path):
    path = write(tmp_path, "mine.json", json.dumps(ANALYZED))
    assert load_template(path) == ANALYZED


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"settings": {', r"bad\.json' is not valid JSON \(line 1, column 15"),
        ("[1, 2]", r"bad\.json' must be a JSON object.*not list"),
        ('{"settings": {}, "aliases": {}}', r"bad\.json' has unknown top-level keys \['aliases'\]"),
        ('{"mappings": {"properties": []}}', r"bad\.json': mappings.properties must be a JSON obj"),
        ('{"mappings": {"properties": {"a": "text"}}}', r"mappings.properties.a must be a JSON"),
        ('{"settings": {"index": 1}}', r"bad\.json': settings.index must be a JSON object"),
        ('{"mappings": {"_meta": 1}}', r"mappings._meta must be a JSON object"),
        ('{"mappings": 1}', r"bad\.json': mappings must be a JSON object, not int"),
    ],
)
def test_bad_template_files_are_refused_naming_the_file(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_template(write(tmp_path, "bad.json", text))


def test_unreadable_template_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Cannot read index template .*missing\.json"):
        load_template(tmp_path / "missing.json")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ValueError, match=r"latin1\.json.*UTF-8"):
        load_template(path)


def test_dict_templates_are_checked_too():
    with pytest.raises(ValueError, match="index template must be a JSON object"):
        check_template("settings")
    with pytest.raises(ValueError, match="unknown top-level keys"):
        body_for({"mapping": {}})


@pytest.mark.es
def test_user_template_on_a_real_node(es_cluster, splade_encoder, index_names, tmp_path):
    path = write(tmp_path, "mine.json", json.dumps(ANALYZED))
    index = index_names(es_cluster)
    layout, state = prepare_index(
        es_cluster, splade_encoder, index, replicas=0, template=load_template(path)
    )
    assert state == "created"
    mapping = es_cluster.request("GET", f"/{index}/_mapping")[index]["mappings"]
    assert mapping["properties"]["text"] == {"type": "text", "analyzer": "no_the"}
    assert mapping["properties"]["tags"] == {"type": "keyword"}
    assert mapping["properties"][layout.field] == {"type": layout.mapping_type}
    assert mapping["_meta"]["owner"] == "search-team"
    settings = es_cluster.request("GET", f"/{index}/_settings")[index]["settings"]["index"]
    assert settings["number_of_shards"] == "3" and settings["number_of_replicas"] == "0"
    assert "no_the" in settings["analysis"]["analyzer"]
    tokens = es_cluster.request(
        "POST", f"/{index}/_analyze", body={"field": "text", "text": "The Café"}
    )["tokens"]
    assert [t["token"] for t in tokens] == ["café"]
    info = get_index(es_cluster, index)
    assert info is not None and info.meta["field"] == layout.field
