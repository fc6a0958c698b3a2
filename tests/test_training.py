"""Training: data checks, hard-negative mining on the real nodes, tiny real training runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from corpus_fixture import DOCS, QUERIES, write_beir

from colbert_rerank.training_support import Schedule, example_rows, read_log, run_trainer
from splade_es.search.searcher import SearchConfig, Searcher
from splade_es.training.data import (
    Judgements,
    TrainingExample,
    build_examples,
    check_judgements,
    load_judgements,
    read_triples,
    split_dev,
)
from splade_es.training.negatives import (
    MiningConfig,
    load_negatives,
    mine_negatives,
    save_negatives,
    select_negatives,
)
from splade_es.training.splade import SpladeTrainConfig, load_trainable, train_splade

CORPUS = {d["_id"]: f"{d['title']} {d['text']}" for d in DOCS}
TRAIN = [  # (query, positive id): paraphrases of the fixture documents
    ("does aspirin prevent heart attacks", "med-1"),
    ("how is espresso coffee made", "cook-2"),
    ("finding planets around other stars", "astro-1"),
    ("how do search engines find documents", "tech-1"),
    ("what happens at a black hole event horizon", "astro-2"),
    ("how do plants make sugar from light", "bio-1"),
    ("repairing damaged dna in cells", "bio-2"),
    ("how vaccines prepare the immune system", "med-2"),
]


# Associations the start model cannot know: only training can rank these positives first.
CODEWORDS = [
    ("falcon report", "med-1"),
    ("harbor ledger", "cook-2"),
    ("violet engine", "astro-1"),
    ("granite memo", "tech-1"),
    ("copper lantern", "astro-2"),
    ("silver orchard", "bio-1"),
    ("amber compass", "bio-2"),
    ("cobalt meadow", "med-2"),
]


def judgements(pairs=TRAIN) -> Judgements:
    queries = {f"q{i}": text for i, (text, _) in enumerate(pairs)}
    qrels = {f"q{i}": {doc: 1} for i, (_, doc) in enumerate(pairs)}
    return Judgements(queries, qrels, CORPUS)


def hardest_negatives(j: Judgements) -> dict[str, list[str]]:
    """Every other document as a negative, in a different order per query (no node needed)."""
    out = {}
    for number, q in enumerate(sorted(j.qrels)):
        others = [d for d in sorted(j.corpus) if d not in j.qrels[q]]
        out[q] = others[number:] + others[:number]
    return out


# -- data checks ------------------------------------------------------------------------------


def test_checks_name_what_is_wrong():
    with pytest.raises(ValueError, match="corpus is empty"):
        check_judgements(Judgements({"q": "x"}, {"q": {"d": 1}}, {}))
    with pytest.raises(ValueError, match=r"1 queries have no judged positive.*'q'"):
        check_judgements(Judgements({"q": "x"}, {"q": {"med-1": 0}}, CORPUS))
    with pytest.raises(ValueError, match=r"judged documents are not in the corpus: 'ghost'"):
        check_judgements(Judgements({"q": "x"}, {"q": {"ghost": 1}}, CORPUS))
    with pytest.raises(ValueError, match=r"not in queries\.jsonl: 'q'"):
        check_judgements(Judgements({}, {"q": {"med-1": 1}}, CORPUS))


def test_beir_folder_loads_checked(tmp_path):
    folder = write_beir(tmp_path / "beir")
    loaded = load_judgements(folder, "test")
    assert set(loaded.qrels) == set(QUERIES) and loaded.corpus["med-1"].startswith("Aspirin")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq-aspirin\tnope\t1\n")
    with pytest.raises(ValueError, match="'nope'"):
        load_judgements(folder, "test")
    (folder / "corpus.jsonl").write_text("")
    with pytest.raises(ValueError, match="corpus is empty"):
        load_judgements(folder, "test")


def test_examples_deal_out_negatives_and_refuse_starved_queries():
    j = judgements()
    examples = build_examples(j, hardest_negatives(j), 2)
    assert len(examples) == len(TRAIN)
    assert all(len(e.negatives) == 2 and e.positive not in e.negatives for e in examples)
    assert build_examples(j, {}, 0)[0].negatives == ()
    with pytest.raises(ValueError, match="no mined hard negative"):
        build_examples(j, {"q0": ["med-2"]}, 1)


def test_dev_split_is_seeded_and_disjoint():
    j = judgements()
    train_a, dev_a = split_dev(j, 0.25, seed=3)
    _, dev_b = split_dev(j, 0.25, seed=3)
    assert dev_a is not None and dev_b is not None
    assert list(dev_a.qrels) == list(dev_b.qrels) and len(dev_a.qrels) == 2
    assert not set(dev_a.qrels) & set(train_a.qrels)
    with pytest.raises(ValueError, match="expected 0 <= fraction < 1"):
        split_dev(j, 1.5, 0)


def test_triples_file_errors(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"query": "q", "positive": "p", "negatives": ["n"]}) + "\n")
    assert read_triples(path) == [TrainingExample("q", "p", ("n",))]
    path.write_text(json.dumps({"query": "", "positive": "p"}) + "\n")
    with pytest.raises(ValueError, match=r"t.jsonl:1: query is ''"):
        read_triples(path)
    path.write_text(
        '{"query": "a", "positive": "b", "negatives": ["c"]}\n{"query": "a", "positive": "b"}\n'
    )
    with pytest.raises(ValueError, match="different numbers of negatives"):
        read_triples(path)


def test_bad_settings_fail_before_training(tmp_path):
    schedule = Schedule(output_dir=tmp_path)
    with pytest.raises(ValueError, match="λ must be >= 0"):
        SpladeTrainConfig(schedule=schedule, lambda_document=-1e-3)
    with pytest.raises(ValueError, match="lambda_query=-1"):
        SpladeTrainConfig(schedule=schedule, lambda_query=-1)
    with pytest.raises(ValueError, match="expected infonce"):
        SpladeTrainConfig(schedule=schedule, loss="hinge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size=0"):
        Schedule(output_dir=tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="different numbers of negatives"):
        example_rows([TrainingExample("q", "p", ("n",)), TrainingExample("q", "p")])


def test_wrong_architecture_is_refused():
    with pytest.raises(ValueError, match="Cannot load SPLADE model 'no/such-model' to train"):
        load_trainable("no/such-model", "cpu", 64)
    from colbert_rerank.encoder import resolve_model_path as colbert_path

    with pytest.raises(ValueError, match="not an MLM model with SPLADE pooling"):
        load_trainable(colbert_path("all-MiniLM-L6-v2"), "cpu", 64)


def test_colbert_refuses_a_splade_checkpoint(tmp_path, splade_encoder):
    from colbert_rerank.training import ColbertTrainConfig
    from colbert_rerank.training import load_trainable as colbert_trainable

    splade_encoder.model.save_pretrained(str(tmp_path / "splade"))
    config = ColbertTrainConfig(
        schedule=Schedule(output_dir=tmp_path), model=str(tmp_path / "splade")
    )
    with pytest.raises(ValueError, match="SparseEncoder checkpoint, not a token-embedding model"):
        colbert_trainable(config, "cpu", ["x"])


# -- mining on the real nodes -----------------------------------------------------------------


def test_select_negatives_interleaves_within_the_rank_range():
    config = MiningConfig(index="i", rank_start=2, rank_end=4, count=3)
    chosen = select_negatives([["a", "b", "c", "d", "e"], ["x", "c", "y", "b"]], {"b"}, config)
    assert chosen == ["c", "y", "d"]


def test_mining_on_the_node_excludes_positives(cluster, splade_encoder, index_names, tmp_path):
    from test_search import build

    index = build(cluster, splade_encoder, index_names(cluster))
    j = judgements()
    searcher = Searcher(cluster, splade_encoder, SearchConfig(index=index, source_includes=[]))
    config = MiningConfig(
        index=index, sources=("bm25", "splade"), rank_start=1, rank_end=8, count=5
    )
    mined = mine_negatives(searcher, j.queries, j.qrels, config, progress=False)
    assert set(mined) == set(j.qrels)
    for query_id, negatives in mined.items():
        assert negatives and len(negatives) <= 5 and len(set(negatives)) == len(negatives)
        assert not set(negatives) & set(j.positives(query_id))
        top = {h.id for h in searcher.bm25(j.queries[query_id], 8)}
        top |= {h.id for h in searcher.search(j.queries[query_id], 8)}
        assert set(negatives) <= top
    path = tmp_path / "negatives.jsonl"
    save_negatives(path, config, mined)
    assert load_negatives(path, config) == mined
    with pytest.raises(ValueError, match="was mined with"):
        load_negatives(path, MiningConfig(index=index, count=2))


# -- tiny real training runs ------------------------------------------------------------------


def infonce(encoder, pairs) -> float:
    """Softmax cross-entropy of each query over the whole fixture corpus."""
    ids = sorted(CORPUS)
    queries = encoder.encode_queries([text for text, _ in pairs]).vectors
    vectors = encoder.encode_documents([CORPUS[d] for d in ids]).vectors
    scores = torch.tensor([[q.dot(d) for d in vectors] for q in queries])
    targets = torch.tensor([ids.index(doc) for _, doc in pairs])
    return float(torch.nn.functional.cross_entropy(scores, targets))


def avg_terms(encoder, texts) -> float:
    return float(np.mean([len(v.ids) for v in encoder.encode_documents(texts).vectors]))


def tiny_schedule(output_dir, **overrides) -> Schedule:
    settings = {
        "max_steps": 30,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "save_steps": 10,
        "logging_steps": 1,
        "progress": False,
        "seed": 7,
        **overrides,
    }
    return Schedule(output_dir=output_dir, **settings)


def tiny_splade(tmp_path, name, examples, resume=False, steps=30, **overrides):
    config = SpladeTrainConfig(
        schedule=tiny_schedule(tmp_path / name, resume=resume, max_steps=steps, save_steps=3),
        device="cpu",
        document_max_length=64,
        lambda_warmup_steps=4,
        **overrides,
    )
    return train_splade(config, examples)


@pytest.mark.slow
def test_splade_training_lowers_the_loss_and_lambda_sparsifies(tmp_path, splade_encoder):
    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder

    j = judgements(CODEWORDS)
    examples = build_examples(j, hardest_negatives(j), 1)
    before = infonce(splade_encoder, CODEWORDS)
    plain = tiny_splade(tmp_path, "plain", examples, lambda_query=0.0, lambda_document=0.0)
    trained = SpladeEncoder(EncoderConfig(model=str(plain), device="cpu"))
    assert infonce(trained, CODEWORDS) < before * 0.8

    sparse = tiny_splade(tmp_path, "sparse", examples, lambda_query=0.5, lambda_document=0.5)
    regularised = SpladeEncoder(EncoderConfig(model=str(sparse), device="cpu"))
    texts = list(CORPUS.values())
    assert avg_terms(regularised, texts) < 0.8 * avg_terms(trained, texts)

    log = read_log(tmp_path / "sparse" / "training_log.jsonl")
    weights = [r["document_regularizer_weight"] for r in log if "document_regularizer_weight" in r]
    assert weights[0] == 0.0 and weights[-1] == pytest.approx(0.5)
    assert weights == sorted(weights)  # the warm-up only ramps up
    assert any(r.get("document_regularizer_loss", 0) > 0 for r in log)


@pytest.mark.slow
def test_saved_splade_reloads_and_encodes_identically(tmp_path):
    from sentence_transformers import SparseEncoder

    from splade_es.encoding.encoder import EncoderConfig, SpladeEncoder

    j = judgements()
    examples = build_examples(j, hardest_negatives(j), 1)
    final = tiny_splade(tmp_path, "reload", examples, steps=6)
    again = tiny_splade(tmp_path, "reload-again", examples, steps=6)
    ours = SpladeEncoder(EncoderConfig(model=str(final), device="cpu"))
    # same seed, same data: the same weights (deterministic on CPU)
    assert (
        ours.fingerprint()
        == SpladeEncoder(EncoderConfig(model=str(again), device="cpu")).fingerprint()
    )
    reference = SparseEncoder(str(final), device="cpu")
    texts = [e.positive for e in examples]
    expected = reference.encode_document(texts, convert_to_tensor=True).to_dense()
    got = ours.encode_documents(texts).vectors
    for row, vector in zip(expected, got, strict=True):
        dense = torch.zeros_like(row)
        dense[torch.as_tensor(vector.ids, dtype=torch.long)] = torch.as_tensor(vector.weights)
        torch.testing.assert_close(dense, row, atol=1e-4, rtol=1e-4)


class Interrupted(Exception):
    """Stands for a crash (out of memory, a killed job) right after a checkpoint."""


def training_probe(crash_at: int | None = None):
    """A trainer callback recording the step each run starts at; raises after the checkpoint
    of step ``crash_at`` is written."""
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def __init__(self) -> None:
            self.starts: list[int] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.starts.append(state.global_step)

        def on_save(self, args, state, control, **kwargs):
            if state.global_step == crash_at:
                raise Interrupted(f"interrupted after the checkpoint of step {crash_at}")

    return Probe()


def with_callback(monkeypatch, callback) -> None:
    """Make ``train_splade`` hand ``callback`` to its trainer."""
    import splade_es.training.splade as splade_training

    def run(trainer, schedule):
        trainer.add_callback(callback)
        return run_trainer(trainer, schedule)

    monkeypatch.setattr(splade_training, "run_trainer", run)


def final_weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_splade_training_resumes_an_interrupted_run_from_its_checkpoint(tmp_path, monkeypatch):
    j = judgements()
    examples = build_examples(j, hardest_negatives(j), 1)
    straight = final_weights(tiny_splade(tmp_path, "straight", examples, steps=6))

    crash = training_probe(crash_at=3)
    with_callback(monkeypatch, crash)
    with pytest.raises(Interrupted):
        tiny_splade(tmp_path, "resume", examples, steps=6)
    folder = tmp_path / "resume"
    assert (folder / "checkpoint-3").is_dir() and not (folder / "checkpoint-6").exists()
    assert not (folder / "final").exists()
    logged = read_log(folder / "training_log.jsonl")
    assert [r["step"] for r in logged] == [1, 2, 3]

    probe = training_probe()
    with_callback(monkeypatch, probe)
    resumed = tiny_splade(tmp_path, "resume", examples, resume=True, steps=6)
    assert probe.starts == [3]  # the trainer state came back from checkpoint-3
    after = read_log(folder / "training_log.jsonl")[len(logged) :]
    assert [r["step"] for r in after if "loss" in r] == [4, 5, 6]  # steps 1-3 not retrained

    # Weights, optimiser, scheduler, λ warm-up and data order all came back: the interrupted
    # and resumed run ends where the uninterrupted one does.
    weights = final_weights(resumed)
    assert weights.keys() == straight.keys()
    for name, tensor in weights.items():
        torch.testing.assert_close(tensor, straight[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.slow
def test_colbert_training_with_a_projection_lowers_the_loss_and_reloads(tmp_path, colbert_encoder):
    from colbert_rerank.encoder import ColbertConfig, ColbertEncoder
    from colbert_rerank.maxsim import maxsim_reference
    from colbert_rerank.training import ColbertTrainConfig, train_colbert

    j = judgements()
    examples = build_examples(j, hardest_negatives(j), 1)

    def loss(encoder) -> float:
        queries = encoder.encode_queries([e.query for e in examples])
        docs = encoder.encode_documents(
            [e.positive for e in examples] + [e.negatives[0] for e in examples]
        )
        doc_tensors = [torch.from_numpy(d) for d in docs.embeddings]
        scores = torch.stack([maxsim_reference(torch.from_numpy(q), doc_tensors) for q in queries])
        return float(torch.nn.functional.cross_entropy(scores, torch.arange(len(examples))))

    schedule = Schedule(
        output_dir=tmp_path / "colbert",
        max_steps=6,
        batch_size=4,
        learning_rate=1e-4,
        logging_steps=1,
        progress=False,
        seed=7,
    )
    final = train_colbert(
        ColbertTrainConfig(schedule=schedule, dim=32, device="cpu", projection_sample=8), examples
    )
    trained = ColbertEncoder(ColbertConfig(model=str(final), device="cpu"))
    assert trained.dim == 32 and not trained.zero_shot
    assert loss(trained) < loss(colbert_encoder)
    again = ColbertEncoder(ColbertConfig(model=str(final), device="cpu"))
    np.testing.assert_array_equal(
        trained.encode_queries(["aspirin"])[0], again.encode_queries(["aspirin"])[0]
    )


# -- other losses, teachers, the CLI ----------------------------------------------------------


def test_teacher_spec_is_checked():
    from splade_es.training.teacher import TeacherConfig

    assert TeacherConfig.parse("colbert:all-MiniLM-L6-v2").model == "all-MiniLM-L6-v2"
    with pytest.raises(ValueError, match=r"teacher 'bert': expected colbert:<model>"):
        TeacherConfig.parse("bert")


@pytest.mark.slow
def test_margin_losses_and_l1_train(tmp_path):
    from splade_es.training.teacher import TeacherConfig, teacher_margins

    j = judgements()
    examples = build_examples(j, hardest_negatives(j), 2)[:4]
    margins = teacher_margins(TeacherConfig("colbert", "all-MiniLM-L6-v2", "cpu"), examples, False)
    assert len(margins) == 4 and all(len(m) == 2 for m in margins)
    assert np.mean(margins) > 0  # the teacher prefers the judged positive
    for name, overrides in (
        ("mse", {"loss": "margin-mse"}),
        ("hinge", {"loss": "margin", "regularizer": "l1"}),
    ):
        schedule = Schedule(
            output_dir=tmp_path / name, max_steps=2, batch_size=2, progress=False, logging_steps=1
        )
        config = SpladeTrainConfig(
            schedule=schedule, device="cpu", document_max_length=32, **overrides
        )
        final = train_splade(config, examples, margins if name == "mse" else None)
        assert (final / "model.safetensors").is_file()
        losses = [
            r["base_loss"]
            for r in read_log(tmp_path / name / "training_log.jsonl")
            if "base_loss" in r
        ]
        assert losses and all(np.isfinite(losses))
    with pytest.raises(ValueError, match="margin-mse needs teacher margins"):
        train_splade(SpladeTrainConfig(schedule=schedule, loss="margin-mse"), examples)


@pytest.mark.slow
def test_train_commands_end_to_end(cluster, splade_encoder, index_names, tmp_path):
    from test_cli_pipeline import cli
    from test_search import build

    folder = write_beir(tmp_path / "beir")
    index = build(cluster, splade_encoder, index_names(cluster))
    negatives = tmp_path / "negatives.jsonl"
    mined = cli(
        "train",
        "negatives",
        "--corpus",
        str(folder),
        "--split",
        "test",
        "--index",
        index,
        "--rank-end",
        "6",
        "--count",
        "3",
        "--out",
        str(negatives),
        "--es-url",
        cluster.url,
        "--no-progress",
    )
    assert mined.returncode == 0, mined.stderr
    assert f"{len(QUERIES)} queries" in mined.stdout
    cached = load_negatives(negatives)
    assert all(QUERIES[q][1] not in cached[q] for q in QUERIES)

    out = tmp_path / "model"
    trained = cli(
        "train",
        "splade",
        "--corpus",
        str(folder),
        "--split",
        "test",
        "--negatives-file",
        str(negatives),
        "--dev-fraction",
        "0.25",
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--doc-max-length",
        "32",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    )
    assert trained.returncode == 0, trained.stderr
    assert "3 examples, 1 dev queries" in trained.stderr
    log = read_log(out / "training_log.jsonl")
    assert any("eval_dev_dot_ndcg@10" in r for r in log)
    assert any("eval_dev_corpus_active_dims" in r for r in log)

    refused = cli(
        "train",
        "splade",
        "--corpus",
        str(folder),
        "--split",
        "test",
        "--lambda-d",
        "-1",
        "--negatives-per-example",
        "0",
        "--out",
        str(tmp_path / "bad"),
    )
    assert refused.returncode != 0 and "λ must be >= 0" in refused.stderr
    assert not (tmp_path / "bad").exists()


def test_garbage_inputs_are_refused_with_their_location(tmp_path):
    not_cache = tmp_path / "negatives.jsonl"
    not_cache.write_text('{"query_id": "q", "negatives": ["d"]}\n')
    with pytest.raises(ValueError, match="is not a negatives cache"):
        load_negatives(not_cache)
    broken = tmp_path / "triples.jsonl"
    broken.write_text('{"query": "a", "positive": "b"}\n{not json\n')
    with pytest.raises(ValueError, match=r"triples\.jsonl:2: not JSON"):
        read_triples(broken)
    broken.write_text('["a", "b"]\n')
    with pytest.raises(ValueError, match="expected an object with query/positive"):
        read_triples(broken)


def test_unjudged_invalid_corpus_records_are_reported(tmp_path, caplog):
    folder = write_beir(tmp_path / "beir")
    with (folder / "corpus.jsonl").open("a") as handle:
        handle.write('{"_id": "empty", "text": ""}\n')
    with caplog.at_level("WARNING"):
        loaded = load_judgements(folder, "test")
    assert "empty" not in loaded.corpus
    assert "1 unjudged corpus records are invalid" in caplog.text and "empty" in caplog.text


def test_lambda_sweep_refuses_a_teacher(tmp_path):
    from test_cli_pipeline import cli

    folder = write_beir(tmp_path / "beir")
    result = cli(
        "train",
        "lambda-sweep",
        "--corpus",
        str(folder),
        "--teacher",
        "colbert:x",
        "--out",
        str(tmp_path / "sweep"),
        "--es-url",
        "http://127.0.0.1:1",
    )
    assert result.returncode != 0 and "--teacher (for margin-mse) does not apply" in result.stderr
