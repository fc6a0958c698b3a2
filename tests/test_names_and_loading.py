"""Security: index names and ids at the boundary, no deletes of foreign indices, and model,
codebook and projection loading from safetensors/JSON only (never pickle)."""

from __future__ import annotations

import ast
import json
import pickle
import re
import shutil
import types
import uuid
from pathlib import Path

import numpy as np
import pytest
from cli_runner import cli
from corpus_fixture import DOCS

from colbert_rerank.codebook import Codebook, fit_codebook
from colbert_rerank.loading import check_safe_weights
from colbert_rerank.projection import Projection
from colbert_rerank.storage import mget_fetcher
from splade_es.cluster import capabilities
from splade_es.cluster.admin import (
    check_index_name,
    ensure_index,
    get_index,
    index_stats,
    index_uuid,
    swap_alias,
)
from splade_es.cluster.capabilities import probe
from splade_es.cluster.connection import ClusterError
from splade_es.data.corpus import MAX_ID_BYTES, Document, FieldNames, Rejected, from_records
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder, resolve_model_path
from splade_es.indexing.bulk import BulkConfig, index_documents
from splade_es.indexing.splade_fields import SpladeFields, prepare_index
from splade_es.search.searcher import SearchConfig, Searcher

pytestmark = pytest.mark.security
ROOT = Path(__file__).resolve().parent.parent


# -- index names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "it is empty"),
        ("x" * 256, "256 bytes long, over the engines' limit of 255"),
        ("é" * 128, "256 bytes long"),
        ("logs-*", r"wildcards \(\* \?\)"),
        ("log?", r"wildcards \(\* \?\)"),
        ("a,b", "a comma list addresses several indices"),
        ("_all", "_all addresses every index"),
        ("<logs-{now/d}>", r"date math \(<\.\.\.>\)"),
        (".security", "'.' are system or hidden indices"),
        (".", "'.' are system or hidden indices"),
        ("..", "'.' are system or hidden indices"),
        ("_search", "reserved for the engines' endpoints"),
        ("-x", "refuse names starting with '-'"),
        ("+x", r"refuse names starting with '\+'"),
        ("a..b", r"'\.\.' is refused \(no path tricks\)"),
        ("UPPER", "uppercase letters .*'upper'"),
        ("a/b", "contains '/'"),
        ("a\\b", r"contains '\\\\'"),
        ("a#b", "contains '#'"),
        ("a:b", "contains ':'"),
        ("a b", "contains ' '"),
        ("x%2f_doc", "contains '%'"),
        ("café", "contains 'é'"),
        ("a\nb", r"contains '\\n'"),
    ],
)
def test_bad_index_names_are_refused_with_the_rule_and_the_fix(name, rule):
    with pytest.raises(ValueError, match=rule) as caught:
        check_index_name(name)
    message = str(caught.value)
    assert message.startswith(f"Index name {name!r} is not allowed: ")
    assert "use lowercase letters, digits and . _ + - (not first)" in message


@pytest.mark.parametrize("name", ["scifact", "a.b", "a_b", "a+b", "a-b", "9", "x" * 255])
def test_plain_names_pass_unchanged(name):
    assert check_index_name(name) == name


def test_a_name_that_is_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match=r"Index name \['a'\] is list, not str"):
        check_index_name(["a"])  # type: ignore[arg-type]


def test_every_writer_and_reader_checks_the_name_before_any_request(cluster, index_names):
    """Each entry point refuses with the name check's message, not an engine error."""
    good = index_names(cluster)
    attempts = {
        "get_index": lambda: get_index(cluster, "_all"),
        "ensure_index": lambda: ensure_index(cluster, "*", {"mappings": {"_meta": {}}}),
        "swap_alias (alias)": lambda: swap_alias(cluster, "a,b", good),
        "swap_alias (index)": lambda: swap_alias(cluster, good, "*"),
        "index_stats": lambda: index_stats(cluster, "../_cluster"),
        "index_uuid": lambda: index_uuid(cluster, ".kibana"),
        "probe": lambda: probe(cluster, index_prefix=".hidden"),
        "Searcher": lambda: Searcher(cluster, None, SearchConfig(index="x?refresh=true")),  # type: ignore[arg-type]
        "BulkConfig": lambda: BulkConfig(index="<logs-{now/d}>"),
    }
    for where, attempt in attempts.items():
        with pytest.raises(ValueError, match="is not allowed") as caught:
            attempt()
        assert not isinstance(caught.value, ClusterError), where
    listed = cluster.request("GET", f"/_cat/indices/{good}*", params={"format": "json"})
    assert listed == []  # nothing was created on the way


def test_cli_refuses_a_bad_index_or_alias_before_loading_anything(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "a", "text": "t"}) + "\n")
    url = ["--es-url", "http://127.0.0.1:9"]  # nothing listens: the check must come first
    bad_index = cli("index", str(corpus), "--index", "logs-*", *url)
    assert bad_index.returncode != 0
    assert "Index name 'logs-*' is not allowed: wildcards" in bad_index.stderr
    bad_alias = cli("index", str(corpus), "--index", "ok", "--alias", "_all", *url)
    assert bad_alias.returncode != 0
    assert "Index name '_all' is not allowed" in bad_alias.stderr


# -- document ids ---------------------------------------------------------------------------

AWKWARD_IDS = [
    "a/b",
    "../_settings",
    "..",
    "x?refresh=true",
    "%2e%2e",
    "%2F",
    "#frag",
    "q&r=1",
    "with space",
    "a+b",
    "_doc",
    "_all",
    "*",
    "a,b",
    "naïve-東京-☃",
    "\\back",
    "tab\there",
    "x" * MAX_ID_BYTES,  # exactly the limit
]


def test_awkward_ids_are_plain_ids_end_to_end(cluster, splade_encoder, index_names, tmp_path):
    """Ids that look like paths, queries or encodings round-trip as themselves."""
    index = index_names(cluster)
    prepare_index(cluster, splade_encoder, index)
    records = [
        {"_id": doc_id, "text": f"document {n} about {DOCS[n % len(DOCS)]['text']}"}
        for n, doc_id in enumerate(AWKWARD_IDS)
    ]
    report = index_documents(
        cluster,
        from_records(records, FieldNames()),
        [SpladeFields(splade_encoder)],
        BulkConfig(index=index, progress=False, dead_letter=tmp_path / "dead.jsonl"),
    )
    assert report.indexed == len(AWKWARD_IDS) and not report.failures
    assert index_stats(cluster, index)[0] == len(AWKWARD_IDS)
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index))
    texts = {r["_id"]: r["text"] for r in records}
    for doc_id, text in texts.items():
        assert searcher.document(doc_id, ["text"]) == {"text": text}, doc_id
        explanation = searcher.explain(text, doc_id)
        assert explanation.id == doc_id and explanation.score > 0, doc_id
    hit_ids = {h.id for h in searcher.search("document about", k=len(AWKWARD_IDS))}
    assert hit_ids <= set(AWKWARD_IDS)
    fetch = mget_fetcher(cluster.client, index, field="text")
    assert fetch(AWKWARD_IDS) == texts
    assert fetch(["a%2Fb", "..%2F_settings", "x"]) == {}  # no decoding, no prefix matching


def test_ids_over_the_engine_limit_are_rejected_before_any_request(
    cluster, splade_encoder, index_names, tmp_path
):
    index = index_names(cluster)
    prepare_index(cluster, splade_encoder, index)
    long_ascii = "x" * (MAX_ID_BYTES + 1)
    long_utf8 = "東" * 171  # 513 bytes in 171 characters
    items = list(
        from_records(
            [{"_id": long_ascii, "text": "a"}, {"_id": long_utf8, "text": "b"}], FieldNames()
        )
    )
    assert all(isinstance(item, Rejected) for item in items)
    assert "id is 513 bytes, longer than 512 bytes (the engines' _id limit): shorten it" in (
        items[0].reason
    )
    built_by_hand = Document("y" * 600, "c")  # skips the readers' validation
    report = index_documents(
        cluster,
        [*items, built_by_hand, Document("ok", "fine")],
        [SpladeFields(splade_encoder)],
        BulkConfig(
            index=index,
            progress=False,
            raise_on_failure=False,
            dead_letter=tmp_path / "dead.jsonl",
        ),
    )
    assert report.indexed == 1
    assert [(f.stage, f.status, f.error_type) for f in report.failures] == [
        ("input", None, "invalid_document")
    ] * 3
    assert "600 bytes, longer than 512 bytes" in report.failures[2].reason
    assert index_stats(cluster, index)[0] == 1


# -- never delete what we did not create ------------------------------------------------------


def _indices(cluster, pattern):
    rows = cluster.request(
        "GET", f"/_cat/indices/{pattern}", params={"format": "json", "h": "index"}
    )
    return sorted(row["index"] for row in rows)


def test_probe_leaves_an_existing_index_with_its_generated_name_alone(
    cluster, index_names, monkeypatch
):
    prefix = index_names(cluster)
    fixed = uuid.UUID(int=0xABCDEF12 << 96)  # hex starts with abcdef12
    squatter = f"{prefix}-abcdef12-binary"
    neighbour = f"{prefix}-kept"
    for name in (squatter, neighbour):
        cluster.request(
            "PUT", f"/{name}", body={"mappings": {"properties": {"t": {"type": "text"}}}}
        )
        cluster.request("PUT", f"/{name}/_doc/1", body={"t": "mine"}, params={"refresh": "true"})
    monkeypatch.setattr(capabilities, "uuid", types.SimpleNamespace(uuid4=lambda: fixed))
    with pytest.raises(ValueError, match=f"'{squatter}' already exists and was not created"):
        probe(cluster, index_prefix=prefix, checks=("binary",))
    monkeypatch.undo()
    caps = probe(cluster, index_prefix=prefix)  # a fresh random name: a normal probe
    assert caps.sparse_vector or caps.rank_features
    assert _indices(cluster, f"{prefix}*") == sorted([squatter, neighbour])
    for name in (squatter, neighbour):
        document = cluster.request("GET", f"/{name}/_doc/1")
        assert document["_source"] == {"t": "mine"}


def test_index_into_a_foreign_or_different_index_refuses_without_touching_it(
    cluster, splade_encoder, index_names, tmp_path
):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCS[:3]))
    common = ["--es-url", cluster.url, "--no-progress"]

    foreign = index_names(cluster, "foreign")
    cluster.request(
        "PUT", f"/{foreign}", body={"mappings": {"properties": {"t": {"type": "text"}}}}
    )
    cluster.request("PUT", f"/{foreign}/_doc/1", body={"t": "mine"}, params={"refresh": "true"})
    before = cluster.request("GET", f"/{foreign}/_mapping")
    uuid_before = index_uuid(cluster, foreign)
    run = cli("index", str(corpus), "--index", foreign, *common, cwd=tmp_path)
    assert run.returncode != 0
    assert f"Index '{foreign}' exists and was not created by splade-es" in run.stderr
    assert "never overwrites or deletes it" in run.stderr
    assert cluster.request("GET", f"/{foreign}/_mapping") == before
    assert index_uuid(cluster, foreign) == uuid_before  # not deleted and re-created
    assert index_stats(cluster, foreign)[0] == 1

    other = index_names(cluster, "other-model")
    prepare_index(cluster, splade_encoder, other)  # max pooling, as splade-tiny has
    before = cluster.request("GET", f"/{other}/_mapping")
    uuid_before = index_uuid(cluster, other)
    run = cli("index", str(corpus), "--index", other, "--pooling", "sum", *common, cwd=tmp_path)
    assert run.returncode != 0
    assert f"Index '{other}' was built differently (pooling" in run.stderr
    assert cluster.request("GET", f"/{other}/_mapping") == before
    assert index_uuid(cluster, other) == uuid_before
    assert index_stats(cluster, other)[0] == 0


def test_no_library_code_deletes_an_index():
    """The only DELETE requests: the probe's own indices and a scroll context."""
    deletes = []
    for path in sorted(
        [*(ROOT / "splade_es").rglob("*.py"), *(ROOT / "colbert_rerank").glob("*.py")]
    ):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "DELETE"
            ):
                deletes.append((path.relative_to(ROOT).as_posix(), ast.unparse(node.args[1])))
    assert deletes == [
        ("splade_es/cluster/capabilities.py", "f'/{index}'"),
        ("splade_es/search/searcher.py", "'/_search/scroll'"),
    ]
    source = (ROOT / "splade_es" / "cluster" / "capabilities.py").read_text()
    assert "if index in created:\n                _delete_created(cluster, index)" in source


# -- loading: safetensors and JSON only -------------------------------------------------------


class _Exploit:
    """Unpickling this would call ``Path.touch`` on the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_codebooks_and_projections_refuse_pickle_payloads(tmp_path):
    marker = tmp_path / "unpickled"
    payloads = [
        pickle.dumps(_Exploit(marker)),
        pickle.dumps({"centroids": np.zeros((2, 4), np.float32)}),
    ]
    for payload in payloads:
        with pytest.raises(ValueError, match=r"Not a safetensors codebook .*never pickle"):
            Codebook.from_bytes(payload)
        with pytest.raises(ValueError, match=r"Not a safetensors projection .*never pickle"):
            Projection.from_bytes(payload)
    assert not marker.exists()
    rng = np.random.default_rng(0)
    data = rng.standard_normal((300, 8)).astype(np.float32)
    book = fit_codebook(data / np.linalg.norm(data, axis=1, keepdims=True), bits=2, centroids=4)
    assert Codebook.from_bytes(book.to_bytes()).sha256 == book.sha256


def test_no_library_code_unpickles():
    """No torch.load, pickle, joblib or np.load(allow_pickle=True) in the packages."""
    loaders = {"torch.load", "pickle.load", "pickle.loads", "joblib.load", "dill.load"}
    found = []
    for path in [*(ROOT / "splade_es").rglob("*.py"), *(ROOT / "colbert_rerank").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in loaders:
                found.append((path.name, ast.unparse(node.func)))
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                found.append((path.name, "allow_pickle"))
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                modules.append(getattr(node, "module", None) or "")
                if {"pickle", "joblib", "dill", "cloudpickle"} & set(modules):
                    found.append((path.name, "import"))
    assert found == []


def _pickled_copy(source: Path, target: Path) -> Path:
    """``source`` with model.safetensors replaced by a torch.save'd pytorch_model.bin."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
    torch.save(load_file(source / "model.safetensors"), target / "pytorch_model.bin")
    return target


def test_splade_models_load_only_from_safetensors(splade_encoder, tmp_path):
    from splade_es.training.splade import load_trainable

    packaged = Path(resolve_model_path("splade-tiny"))
    pickled = _pickled_copy(packaged, tmp_path / "pickled")
    message = (
        re.escape(f"{pickled} holds pickle-format weights (heads.pt, pytorch_model.bin) and no ")
        + r"\.safetensors file: models load only from safetensors .*save_pretrained"
    )
    with pytest.raises(ValueError, match=message):
        SpladeEncoder(EncoderConfig(model=str(pickled), device="cpu"))
    with pytest.raises(ValueError, match=message):
        load_trainable(str(pickled), "cpu", 64)

    # A stray .safetensors file passes the folder check; transformers still refuses the .bin.
    (pickled / "notes.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Cannot load SPLADE model .*model\.safetensors"):
        SpladeEncoder(EncoderConfig(model=str(pickled), device="cpu"))

    expected = splade_encoder.fingerprint()["weights_sha256"]
    safe = shutil.copytree(packaged, tmp_path / "safe")
    copy = SpladeEncoder(EncoderConfig(model=str(safe), device="cpu"))
    assert copy.fingerprint()["weights_sha256"] == expected

    # The conversion the message suggests gives a folder that loads, with the same weights.
    from transformers import AutoModelForMaskedLM

    converted = _pickled_copy(packaged, tmp_path / "converted")
    model = AutoModelForMaskedLM.from_pretrained(str(converted), use_safetensors=False)
    model.save_pretrained(str(converted))
    (converted / "pytorch_model.bin").unlink()
    again = SpladeEncoder(EncoderConfig(model=str(converted), device="cpu"))
    assert again.fingerprint()["weights_sha256"] == expected


def test_colbert_models_and_their_modules_load_only_from_safetensors(tmp_path):
    from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
    from colbert_rerank.encoder import resolve_model_path as colbert_path

    packaged = Path(colbert_path("all-MiniLM-L6-v2"))
    pickled = _pickled_copy(packaged, tmp_path / "pickled")
    with pytest.raises(ValueError, match=re.escape(f"{pickled} holds pickle-format weights")):
        ColbertEncoder(ColbertConfig(model=str(pickled), device="cpu"))

    # A module folder named in modules.json is checked too (a Dense layer's weights).
    modular = shutil.copytree(packaged, tmp_path / "modular")
    modules = json.loads((modular / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "Dense"})
    (modular / "modules.json").write_text(json.dumps(modules))
    (modular / "3_Dense").mkdir()
    (modular / "3_Dense" / "pytorch_model.bin").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ValueError, match=r"3_Dense holds pickle-format weights"):
        check_safe_weights(str(modular))
    assert check_safe_weights(str(packaged)) == str(packaged)
    assert check_safe_weights("naver/splade-v3") == "naver/splade-v3"  # the Hub: use_safetensors
