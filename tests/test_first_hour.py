"""A new user's first mistakes, through the CLI and the API on the real nodes: the right error
first (before any model loads), nothing left behind, no silent wrong results."""

from __future__ import annotations

import functools
import http.server
import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from cli_runner import cli
from corpus_fixture import DOCS, write_jsonl

from colbert_rerank.codecs import Codec
from colbert_rerank.devices import check_device
from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
from colbert_rerank.rerank import RerankConfig, Reranker
from splade_es.cluster.admin import IndexMismatchError
from splade_es.cluster.connection import (
    ClusterConfig,
    ClusterError,
    ClusterUnavailableError,
    connect,
)
from splade_es.data.corpus import Document, FieldNames, Rejected, from_records
from splade_es.data.fields import KeptField
from splade_es.data.readers import read_corpus, read_csv
from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
from splade_es.indexing.build import BuildConfig, ColbertIndexing, build_index
from splade_es.indexing.bulk import BulkConfig
from splade_es.indexing.colbert_fields import ColbertStorage
from splade_es.search.rerank import open_reranker
from splade_es.search.searcher import SearchConfig, Searcher

LOADING = "Loading SPLADE model"


def build(cluster, encoder, index, colbert=None):
    config = BuildConfig(BulkConfig(index=index, progress=False))
    return build_index(cluster, from_records(DOCS), encoder, config, colbert)


def gone(cluster, index) -> bool:
    try:
        cluster.request("GET", f"/{index}")
    except ClusterError as error:
        return error.status == 404
    return False


@pytest.mark.es
def test_a_typo_in_the_index_name_is_named_first_with_the_close_names(
    es_cluster, splade_encoder, index_names
):
    index = index_names(es_cluster, "scifact")
    build(es_cluster, splade_encoder, index)
    typo = index[:-2] + index[-1] + index[-2]
    for command in (["search", "coffee"], ["search", "coffee", "--mode", "bm25"], ["explain", "x"]):
        extra = ["--id", "cook-1"] if command[0] == "explain" else []
        run = cli(*command, *extra, "--index", typo, "--es-url", es_cluster.url)
        assert run.returncode == 1, run.stderr
        assert f"Index {typo!r} does not exist" in run.stderr
        assert f"did you mean {index!r}" in run.stderr
        assert LOADING not in run.stderr  # checked before any model is loaded


@pytest.mark.es
def test_a_search_without_hits_says_so(es_cluster, splade_encoder, index_names):
    index = index_names(es_cluster)
    build(es_cluster, splade_encoder, index)
    nothing = json.dumps({"term": {"_id": "no-such-document"}})
    run = cli("search", "coffee", "--index", index, "--filter", nothing, "--es-url", es_cluster.url)
    assert run.returncode == 0, run.stderr
    assert "no hits" in run.stdout and "matching the filters" in run.stdout


def test_a_device_that_is_not_one_is_refused_with_one_message():
    run = cli("search", "coffee", "--index", "docs", "--device", "gpu")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "device='gpu' is not a device: pass cpu, cuda, cuda:N" in run.stderr
    for config in (EncoderConfig, ColbertConfig):
        with pytest.raises(ValueError, match="device='gpu' is not a device: pass cpu, cuda"):
            config(device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_what_the_machine_has_and_what_to_pass():
    message = r"CUDA is not available here: this machine has no CUDA device.*Pass --device cpu"
    with pytest.raises(ValueError, match=message):
        ColbertEncoder(ColbertConfig(device="cuda"))
    with pytest.raises(ValueError, match=message):
        SpladeEncoder(EncoderConfig(device="cuda:1"))


BAD_INPUTS = {
    "no-id.csv": ("title,text\nA,espresso\n", "lacks ['id']"),
    "array.json": ('[{"_id": "a", "text": "espresso"}]\n', "holds a JSON array, not JSON Lines"),
    "wrong-id.jsonl": ('{"doc": "a", "text": "espresso"}\n' * 3, "has the field '_id'"),
}


@pytest.mark.es
@pytest.mark.parametrize("name", [*BAD_INPUTS, "not-beir"])
def test_bad_input_is_refused_before_anything_is_created(es_cluster, index_names, tmp_path, name):
    path = tmp_path / name
    if name == "not-beir":
        path.mkdir()
        (path / "notes.txt").write_text("not a corpus")
        message = "is not a BEIR folder"
    else:
        content, message = BAD_INPUTS[name]
        path.write_text(content)
    index = index_names(es_cluster)
    run = cli("index", str(path), "--index", index, "--es-url", es_cluster.url, "--no-progress")
    assert run.returncode == 1, run.stderr
    assert message in run.stderr and LOADING not in run.stderr
    assert gone(es_cluster, index)


def test_a_csv_cut_inside_a_quoted_field_dead_letters_that_record(tmp_path):
    path = tmp_path / "cut.csv"
    path.write_text('id,text\n1,"fine"\n2,"the file ends in the middle of this fie')
    first, last = list(read_csv(path))
    assert isinstance(first, Document) and first.text == "fine"
    assert isinstance(last, Rejected) and "malformed" in last.reason and "quoting" in last.reason


@pytest.mark.es
def test_adding_embeddings_in_place_is_refused_before_any_model_loads(
    es_cluster, splade_encoder, index_names, tmp_path
):
    index = index_names(es_cluster)
    build(es_cluster, splade_encoder, index)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    run = cli("index", str(corpus), "--index", index, "--colbert", "--es-url", es_cluster.url)
    assert run.returncode == 1, run.stderr
    assert "without ColBERT token embeddings" in run.stderr and "--alias" in run.stderr
    assert LOADING not in run.stderr
    assert gone(es_cluster, f"{index}-colbert-codebook")

    explained = cli(
        "explain",
        "coffee",
        "--index",
        index,
        "--id",
        "cook-1",
        "--colbert",
        "--es-url",
        es_cluster.url,
    )
    assert explained.returncode == 2 and "--colbert --alias" in explained.stderr


def test_the_rerank_hook_refuses_hits_of_another_index(colbert_encoder):
    reranker = Reranker(colbert_encoder, Codec("float16", colbert_encoder.dim), index="docs-v2")
    hits = [
        {"_id": "a", "_score": 1.0, "_index": "docs-v2"},
        {"_id": "b", "_score": 0.5, "_index": "docs-v1"},
    ]
    with pytest.raises(ValueError, match=r"1 hit\(s\) come from other indices than 'docs-v2'"):
        reranker.rerank("espresso", hits)


@pytest.mark.es
def test_hits_searched_through_an_alias_are_the_reranked_index_s_own(
    es_cluster, splade_encoder, colbert_encoder, index_names
):
    index, alias = index_names(es_cluster), index_names(es_cluster, "live")
    colbert = ColbertIndexing(colbert_encoder, ColbertStorage(codec="float16"))
    config = BuildConfig(BulkConfig(index=index, progress=False), alias=alias)
    build_index(es_cluster, from_records(DOCS), splade_encoder, config, colbert)
    searcher = Searcher(es_cluster, splade_encoder, SearchConfig(index=alias))
    hits = [hit.as_dict() for hit in searcher.search("espresso coffee", 5)]
    result = open_reranker(es_cluster, alias, colbert_encoder).rerank("espresso coffee", hits)
    assert result.hits[0]["_id"] == "cook-2"


def test_a_url_that_is_not_a_search_engine_is_named(tmp_path):
    (tmp_path / "index.html").write_text("<html><body>a web site</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for engine in ("auto", "opensearch"):
            with pytest.raises(
                ClusterError, match="is not an Elasticsearch or OpenSearch endpoint"
            ):
                connect(ClusterConfig(url=url, engine=engine))
        run = cli("search", "coffee", "--index", "docs", "--es-url", url)
    finally:
        server.shutdown()
        server.server_close()
    assert run.returncode == 1 and "Check --es-url" in run.stderr
    assert "<h1>" not in run.stderr and len(run.stderr) < 600  # no page dumped


def test_an_unreachable_url_gives_one_message_without_transport_warnings():
    run = cli("search", "coffee", "--index", "docs", "--es-url", "http://127.0.0.1:1")
    assert run.returncode == 1
    assert "No answer from http://127.0.0.1:1" in run.stderr
    assert "WARNING" not in run.stderr and "Traceback" not in run.stderr


@pytest.mark.es
def test_a_new_index_is_green_on_a_single_node(es_cluster, splade_encoder, index_names):
    index, fixed = index_names(es_cluster), index_names(es_cluster, "fixed")
    built = build(es_cluster, splade_encoder, index)
    assert built.prepared.replicas == "0"  # one data node: a replica could never be assigned
    health = es_cluster.request("GET", f"/_cluster/health/{index}")
    assert health["status"] == "green", health
    config = BuildConfig(BulkConfig(index=fixed, progress=False), replicas=1)
    chosen = build_index(es_cluster, from_records(DOCS), splade_encoder, config)
    assert chosen.prepared.replicas == "1"  # the user's choice is kept (yellow on one node)


@pytest.mark.es
def test_the_index_bar_shows_encoded_and_acknowledged_without_a_line_per_document(
    es_cluster, splade_encoder, index_names, capsys
):
    records = [dict(d, _id=f"{d['_id']}-{i}") for i in range(4) for d in DOCS]
    config = BuildConfig(BulkConfig(index=index_names(es_cluster), progress=True))
    build_index(es_cluster, from_records(records), splade_encoder, config, total=len(records))
    bar = capsys.readouterr().err
    assert f"encoded={len(records)}" in bar and f"acknowledged={len(records)}" in bar
    assert bar.count("\r") < len(records) / 2, bar  # redrawn every 0.1 s at most


@pytest.mark.es
def test_ctrl_c_while_indexing_says_what_landed_and_a_rerun_goes_on(
    es_cluster, splade_encoder, index_names, tmp_path
):
    records = [dict(d, _id=f"{d['_id']}-{i}") for i in range(50) for d in DOCS]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", records)
    checkpoint = tmp_path / "checkpoint.tsv"
    index = index_names(es_cluster)
    command = [sys.executable, "-m", "splade_es", "index", str(corpus), "--index", index]
    command += ["--checkpoint", str(checkpoint), "--chunk-docs", "10", "--no-progress"]
    command += ["--es-url", es_cluster.url]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (
        checkpoint.exists() and len(checkpoint.read_text().splitlines()) >= 10
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    landed = len(checkpoint.read_text().splitlines())
    assert 10 <= landed < len(records), landed
    assert f"Interrupted: {landed} documents landed in {index}" in err
    assert "Run the same command again" in err and "indexed " in out

    again = cli(*command[3:])
    assert again.returncode == 0, again.stderr
    assert f"skipped        {landed} (already indexed" in again.stdout
    assert es_cluster.request("GET", f"/{index}/_count")["count"] == len(records)


@pytest.mark.es
def test_fitting_the_codebook_shows_a_bar(
    es_cluster, splade_encoder, colbert_encoder, index_names, capsys
):
    colbert = ColbertIndexing(colbert_encoder, ColbertStorage(codec="residual", centroids=8))
    config = BuildConfig(BulkConfig(index=index_names(es_cluster), progress=True))
    build_index(es_cluster, from_records(DOCS), splade_encoder, config, colbert)
    err = capsys.readouterr().err
    # capsys is not a terminal: plain lines, the last one saying it is done
    n = len(DOCS)
    assert f"fitting the ColBERT codebook: {n}/{n} doc (100%)" in err, err
    assert err.count("fitting the ColBERT codebook:") <= 3 and "\r" not in err, err


@pytest.mark.es
def test_a_query_without_content_words_is_flagged(es_cluster, splade_encoder, index_names, caplog):
    index = index_names(es_cluster)
    build(es_cluster, splade_encoder, index)
    searcher = Searcher(es_cluster, splade_encoder, SearchConfig(index=index))
    searcher.search("how is espresso made", 3)
    assert "no content words" not in caplog.text
    hits = searcher.search("the of, and?", 3)
    assert hits  # expansion terms still match: hence the warning
    assert "Query 'the of, and?' has no content words" in caplog.text
    run = cli("search", "to be or to be", "--index", index, "--es-url", es_cluster.url)
    assert run.returncode == 0 and "has no content words" in run.stderr


def test_kept_fields_are_typed_or_their_document_rejected():
    names = FieldNames(
        id="id",
        keep=("year", "open", "day", "tag"),
        types={"year": "int", "open": "bool", "day": "date", "tag": "keyword"},
    )
    good = {"id": "1", "text": "t", "year": " 2020", "open": "yes", "day": "2024-05-01", "tag": 7}
    (document,) = from_records([good], names)
    day = "2024-05-01T00:00:00"  # ISO 8601, as the engines' default date format reads it
    assert document.fields == {"year": 2020, "open": True, "day": day, "tag": "7"}
    bad = [dict(good, id="2", year="soon"), dict(good, id="3", day="May 1st")]
    rejected = list(from_records(bad, names))
    assert [r.reason for r in rejected] == [
        "field 'year': 'soon' is not an int (--keep-field year:int): fix the value, or leave "
        "the type out",
        "field 'day': 'May 1st' is not a date (--keep-field day:date): fix the value, or leave "
        "the type out",
    ]
    assert KeptField.parse("price:float").mapping == {"type": "double"}
    with pytest.raises(ValueError, match="unknown type 'integer'; use one of int, float"):
        KeptField.parse("year:integer")
    with pytest.raises(ValueError, match=r"types given for \['x'\], which are not kept"):
        FieldNames(types={"x": "int"})


@pytest.mark.es
def test_a_typed_csv_field_filters_as_a_number_and_the_summary_says_how_it_was_mapped(
    es_cluster, index_names, tmp_path
):
    rows = ["id,text,year,venue", "old,espresso history,999,Cafe", "new,espresso today,2020,Bar"]
    corpus = tmp_path / "docs.csv"
    corpus.write_text("\n".join(rows) + "\n")
    typed, untyped = index_names(es_cluster, "typed"), index_names(es_cluster, "untyped")
    common = ["--es-url", es_cluster.url, "--no-progress"]
    keep = ["--keep-field", "year:int", "--keep-field", "venue"]
    run = cli("index", str(corpus), "--index", typed, *keep, *common)
    assert run.returncode == 0, run.stderr
    assert "kept fields    year as long, venue as text (untyped:" in run.stdout
    recent = json.dumps({"range": {"year": {"gte": 2000}}})
    found = cli("search", "espresso", "--index", typed, "--filter", recent, "--json", *common[:2])
    assert [hit["_id"] for hit in json.loads(found.stdout)] == ["new"]

    run = cli("index", str(corpus), "--index", untyped, "--keep-field", "year", *common)
    assert "kept fields    year as text (untyped: --keep-field year:int for numbers)" in run.stdout
    bad = cli("index", str(corpus), "--index", typed, "--keep-field", "year:integer", *common)
    assert bad.returncode == 2 and "unknown type 'integer'" in bad.stderr


@pytest.mark.es
def test_a_rerank_depth_below_k_is_raised_and_said(
    es_cluster, splade_encoder, colbert_encoder, index_names
):
    index = index_names(es_cluster)
    colbert = ColbertIndexing(colbert_encoder, ColbertStorage(codec="float16"))
    build(es_cluster, splade_encoder, index, colbert)
    query = ["search", "espresso coffee", "--index", index, "--rerank", "--json"]
    run = cli(*query, "-k", "3", "--rerank-k", "2", "--es-url", es_cluster.url)
    assert run.returncode == 0, run.stderr
    assert "--rerank-k 2 is below -k 3: reranking the top 3." in run.stderr
    hits = json.loads(run.stdout)
    assert len(hits) == 3 and all(hit["_colbert_score"] is not None for hit in hits)


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the status and body of the server it belongs to."""

    def do_GET(self) -> None:
        status, kind, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_: object) -> None: ...


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ((403, "application/json", '{"Message": "User: anonymous is not authorized"}'),
         ClusterError, "403"),
        ((503, "text/html", "<html>Service Unavailable</html>"), ClusterUnavailableError,
         "is not serving"),
    ],
)  # fmt: skip
def test_a_refusal_or_a_down_cluster_is_not_called_a_web_page(answer, error, message):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    server.answer = answer  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(error, match=message) as raised:
            connect(ClusterConfig(url=f"http://127.0.0.1:{server.server_address[1]}"))
    finally:
        server.shutdown()
        server.server_close()
    assert "not an Elasticsearch or OpenSearch endpoint" not in str(raised.value)


def test_typed_values_missing_or_unreadable(tmp_path):
    names = FieldNames(id="id", keep=("year",), types={"year": "int"})
    (document,) = from_records([{"id": "1", "text": "t", "year": " "}], names)
    assert document.fields == {"year": None}  # an empty CSV cell is a missing value
    assert hash(names)  # FieldNames stays hashable
    beir = tmp_path / "beir"
    beir.mkdir()
    write_jsonl(beir / "corpus.jsonl", [{"_id": "a", "text": "t", "year": "soon"}])
    (rejected,) = read_corpus(beir, "beir", FieldNames(keep=("year",), types={"year": "int"}))
    assert isinstance(rejected, Rejected) and "'soon' is not an int" in rejected.reason
    pretty = tmp_path / "pretty.jsonl"
    pretty.write_text(json.dumps([{"_id": "a", "text": "t"}] * 3, indent=2)[1:])
    with pytest.raises(ValueError, match="none of the first 10 records could be read"):
        read_corpus(pretty)
    header = tmp_path / "header.csv"
    header.write_text('id,"text\n1,x\n')
    with pytest.raises(ValueError, match="CSV header row cannot be read"):
        list(read_corpus(header))
    cut = tmp_path / "cut.csv"
    cut.write_text('id,text\n1,"fine"\n2,"no end')
    assert "ending at line 3" in list(read_csv(cut))[1].reason
    with pytest.raises(ValueError, match="device='gpu' is not a device"):
        RerankConfig(device="gpu")
    assert check_device(torch.device("cpu")) == "cpu"


@pytest.mark.es
def test_typed_fields_and_embeddings_are_checked_against_the_index_first(
    es_cluster, splade_encoder, colbert_encoder, index_names, tmp_path
):
    index = index_names(es_cluster)
    records = [dict(d, year="2020") for d in DOCS]
    build_index(es_cluster, from_records(records, FieldNames(keep=("year",))), splade_encoder,
                BuildConfig(BulkConfig(index=index, progress=False)))  # fmt: skip
    typed = BuildConfig(BulkConfig(index=index, progress=False), fields={"year": {"type": "long"}})
    names = FieldNames(keep=("year",), types={"year": "int"})
    with pytest.raises(IndexMismatchError, match="already maps year as text, not long"):
        build_index(es_cluster, from_records(records, names), splade_encoder, typed)
    clash = BuildConfig(
        BulkConfig(index=index_names(es_cluster, "c"), progress=False),
        fields={"colbert": {"type": "keyword"}},
    )
    with pytest.raises(ValueError, match="has the name of the ColBERT field"):
        build_index(es_cluster, from_records(DOCS), splade_encoder, clash,
                    ColbertIndexing(colbert_encoder))  # fmt: skip
    assert gone(es_cluster, f"{index_names(es_cluster, 'c')}-colbert-codebook")
    run = cli("search", "coffee", "--index", index, "--rerank", "--es-url", es_cluster.url)
    assert run.returncode == 2 and "stores no ColBERT embeddings" in run.stderr
    assert LOADING not in run.stderr
