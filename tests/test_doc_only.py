"""Doc-only SPLADE: the static query table (saved, loaded, used for queries) and its training."""

from __future__ import annotations

import pytest
import torch
from test_training import CORPUS, TRAIN, hardest_negatives, infonce, judgements, tiny_splade

from splade_es.encoding.static_query import (
    FILE,
    StaticQueryWeights,
    load_static_weights,
    save_static_weights,
)
from splade_es.training.data import build_examples
from splade_es.training.doc_only import idf_weights, router_mapping
from splade_es.training.splade import SpladeTrainConfig


def test_table_round_trip_zeroes_special_tokens_and_counts_dropped(tmp_path):
    save_static_weights(tmp_path, torch.tensor([5.0, 2.0, -1.0, 0.0, 0.5]))
    table = load_static_weights(str(tmp_path), 5, special_ids=[0])
    assert table is not None
    assert table.weights.tolist() == [0.0, 2.0, -1.0, 0.0, 0.5]
    assert table.dropped == 2  # -1.0 and 0.0; the special token is not counted
    assert load_static_weights(str(tmp_path / "nowhere"), 5, []) is None


def test_bad_tables_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"one finite float per token, got shape \(2, 2\)"):
        save_static_weights(tmp_path, torch.zeros(2, 2))
    with pytest.raises(ValueError, match="one finite float per token"):
        save_static_weights(tmp_path, torch.tensor([1.0, float("nan")]))
    save_static_weights(tmp_path, torch.ones(4))
    with pytest.raises(ValueError, match=r"one finite float per token \(6\), got \(4,\).*retrain"):
        load_static_weights(str(tmp_path), 6, [])
    (tmp_path / FILE).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=r"Cannot read .*Retrain or remove"):
        load_static_weights(str(tmp_path), 4, [])


def test_pooled_weights_each_present_token_once():
    table = StaticQueryWeights(torch.tensor([0.0, 2.0, -1.0, 0.5]), "x", 1)
    pooled = table.pooled([[1, 1, 3], [2]])
    assert pooled.tolist() == [[0.0, 2.0, 0.0, 0.5], [0.0, 0.0, -1.0, 0.0]]


def test_idf_start_and_routing(splade_encoder):
    tokenizer = splade_encoder.model.tokenizer
    texts = ["water water heart", "heart attack", "coffee"]
    weights = idf_weights(texts, tokenizer, 64)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("water", "heart", "coffee", "moon")}
    assert weights[ids["heart"]] < weights[ids["water"]] == weights[ids["coffee"]]
    assert weights[ids["moon"]] > weights[ids["coffee"]]  # in no document: the largest IDF
    assert all(weights[i] == 0 for i in tokenizer.all_special_ids)
    with pytest.raises(ValueError, match="IDF over documents"):
        idf_weights([], tokenizer, 64)
    wider = idf_weights(texts, tokenizer, 64, size=len(weights) + 8, chunk=1)  # padded output
    assert wider.shape == (len(weights) + 8,) and torch.equal(wider[: len(weights)], weights)
    with pytest.raises(ValueError, match="needs at least the vocabulary's"):
        idf_weights(texts, tokenizer, 64, size=10)
    columns = ["query", "positive", "negative_1", "label"]
    assert router_mapping(columns) == {
        "query": "query",
        "positive": "document",
        "negative_1": "document",
    }


def test_query_encoder_setting_is_checked(tmp_path):
    from colbert_rerank.training_support import Schedule

    schedule = Schedule(output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"query_encoder=.idf.: expected model .* or static"):
        SpladeTrainConfig(schedule=schedule, query_encoder="idf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="table_learning_rate=0"):
        SpladeTrainConfig(schedule=schedule, query_encoder="static", table_learning_rate=0)


@pytest.fixture(scope="module")
def start_folder(tmp_path_factory):
    """splade-tiny's documents with an IDF query table: a doc-only model before training."""
    from sentence_transformers import SparseEncoder

    from splade_es.encoding.encoder import resolve_model_path

    folder = tmp_path_factory.mktemp("doc-only-start")
    start = SparseEncoder(resolve_model_path("splade-tiny"), device="cpu")
    start.save_pretrained(str(folder))
    save_static_weights(folder, idf_weights(list(CORPUS.values()), start.tokenizer, 64))
    return folder


def test_doc_only_queries_search_the_index_of_its_documents(
    cluster, splade_encoder, start_folder, index_names, monkeypatch
):
    from test_static_queries import DOCS, build, idf_searcher

    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder
    from splade_es.search.searcher import SearchConfig, Searcher

    doc_only = SpladeEncoder(EncoderConfig(model=str(start_folder), device="cpu"))
    assert doc_only.query_backend == "static"
    with pytest.raises(ValueError, match="is a doc-only model: its queries run no model"):
        SpladeEncoder(EncoderConfig(model=str(start_folder), device="cpu", query_backend="onnx"))
    assert (
        doc_only.fingerprint()["weights_sha256"] == splade_encoder.fingerprint()["weights_sha256"]
    )
    index = build(cluster, splade_encoder, index_names(cluster))
    searcher = Searcher(cluster, doc_only, SearchConfig(index=index))
    query = "aspirin and heart attacks"
    vector = searcher.encode_query(query)
    stored = {d["_id"]: searcher.stored_vector(d["_id"]) for d in DOCS}
    expected = {i: v.dot(vector) for i, v in stored.items() if v.dot(vector) > 0}
    hits = searcher.search(query, k=len(DOCS))
    assert {h.id: h.score for h in hits} == pytest.approx(expected, rel=1e-4)
    # the IDF table counts documents: the one of the full model serves the doc-only one
    assert idf_searcher(cluster, splade_encoder, index).idf_table().documents == len(DOCS)
    again = idf_searcher(cluster, doc_only, index)
    monkeypatch.setattr(again, "_count_stored", lambda: pytest.fail("the table was recounted"))
    assert again.idf_table().documents == len(DOCS)


@pytest.mark.slow
def test_doc_only_training_learns_and_queries_use_the_table(tmp_path, splade_encoder, start_folder):
    from sentence_transformers import SparseEncoder

    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder

    start = SparseEncoder(str(start_folder), device="cpu")
    idf = idf_weights(list(CORPUS.values()), start.tokenizer, 64)
    untrained = SpladeEncoder(EncoderConfig(model=str(start_folder), device="cpu"))

    j = judgements(TRAIN)
    examples = build_examples(j, hardest_negatives(j), 1)
    final = tiny_splade(tmp_path, "doc-only", examples, steps=10, query_encoder="static")
    trained = SpladeEncoder(EncoderConfig(model=str(final), device="cpu"))
    assert infonce(trained, TRAIN) < 0.5 * infonce(untrained, TRAIN)

    table = load_static_weights(str(final), len(idf), start.tokenizer.all_special_ids)
    assert table is not None and not torch.equal(table.weights, idf)  # the table learned
    assert trained.fingerprint()["query_weights_sha256"] == table.sha256
    assert "query_weights_sha256" not in splade_encoder.fingerprint()
    query = "Does aspirin prevent heart attacks?"
    vector = trained.encode_queries([query]).vectors[0]
    own = set(trained.token_ids(query))
    assert set(vector.ids.tolist()) == {t for t in own if table.weights[t] > 0}
    expected = table.weights[torch.as_tensor(vector.ids, dtype=torch.long)]
    torch.testing.assert_close(torch.as_tensor(vector.weights), expected)
    # documents go through the trained MLM, exactly as sentence-transformers encodes them
    reference = SparseEncoder(str(final), device="cpu")
    text = CORPUS["med-1"]
    dense = reference.encode_document([text], convert_to_tensor=True).to_dense()[0]
    got = trained.encode_documents([text]).vectors[0]
    torch.testing.assert_close(
        dense[torch.as_tensor(got.ids, dtype=torch.long)], torch.as_tensor(got.weights)
    )
    assert int((dense > 0).sum()) == len(got.ids)


@pytest.mark.slow
def test_train_command_saves_a_doc_only_model(tmp_path):
    from corpus_fixture import write_beir
    from test_cli_pipeline import cli

    from colbert_rerank.training_support import read_log
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder

    folder = write_beir(tmp_path / "beir")
    out = tmp_path / "model"
    args = ["--corpus", str(folder), "--split", "test", "--negatives-per-example", "0"]
    steps = ["--max-steps", "2", "--batch-size", "2", "--doc-max-length", "32", "--eval-steps", "1"]
    trained = cli(
        "train", "splade", *args, *steps, "--dev-fraction", "0.25", "--query-encoder", "static",
        "--device", "cpu", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert (out / "final" / FILE).is_file()
    assert any("eval_dev_dot_ndcg@10" in r for r in read_log(out / "training_log.jsonl"))
    encoder = SpladeEncoder(EncoderConfig(model=str(out / "final"), device="cpu"))
    assert encoder.query_backend == "static"
    refused = cli("train", "splade", *args, "--query-encoder", "idf", "--out", str(tmp_path / "x"))
    assert refused.returncode != 0 and "'idf' is not one of 'model', 'static'" in refused.stderr
