"""Train SPLADE (a λ_d sweep) and ColBERT on SciFact's train queries; time GPU against CPU.

Runs wherever torch runs; it needs no cluster (evaluation through the node happens after,
with ``splade-es eval`` / ``benchmarks/eval_trained.py``). Each configuration is trained on
90% of the 809 train queries; the other 10% are the dev split that picks the learning rate.
The speed-up is measured in the same run: the same first steps on the CPU and on the GPU.

    python benchmarks/train_scifact.py --data ../shared/datasets/scifact \
        --negatives runs/scifact-negatives.jsonl --out runs/trained
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from colbert_rerank.training import ColbertTrainConfig, train_colbert
from colbert_rerank.training_support import Schedule, read_log
from splade_es.training.data import build_examples, dev_corpus, load_judgements, split_dev
from splade_es.training.negatives import load_negatives
from splade_es.training.splade import SpladeTrainConfig, train_splade


def dev_score(log_path: Path, key: str) -> float:
    values = [r[key] for r in read_log(log_path) if key in r]
    return float(values[-1]) if values else float("nan")


def seconds_per_step(log_path: Path) -> float:
    final = [r for r in read_log(log_path) if "train_runtime" in r][-1]
    return float(final["train_runtime"]) / max(int(final["step"]), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--negatives", type=Path, required=True)
    parser.add_argument("--splade-model", default="splade-tiny")
    parser.add_argument("--colbert-model", default="all-MiniLM-L6-v2")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--splade-lrs", default="2e-5,1e-4")
    parser.add_argument("--colbert-lrs", default="2e-5,5e-5")
    parser.add_argument("--lambda-main", type=float, default=1e-3)
    parser.add_argument("--lambda-sweep", default="1e-4,1e-2,1e-1")
    parser.add_argument("--splade-epochs", type=float, default=3)
    parser.add_argument("--colbert-epochs", type=float, default=2)
    parser.add_argument("--negatives-per-example", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--speed-steps", type=int, default=4, help="0: no CPU/GPU comparison")
    parser.add_argument("--max-steps", type=int, help="Cap every run (smoke tests).")
    parser.add_argument("--dev-docs", type=int, default=1000)
    args = parser.parse_args()

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    judgements = load_judgements(args.data, "train")
    negatives = load_negatives(args.negatives)
    train_part, dev = split_dev(judgements, 0.1, seed=42)
    assert dev is not None
    examples = build_examples(train_part, negatives, args.negatives_per_example)
    corpus = dev_corpus(dev, negatives, args.dev_docs, seed=42)
    relevant = {q: {d for d, r in dev.qrels[q].items() if r > 0} for q in dev.qrels}
    facts: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0)
        if device.startswith("cuda")
        else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "examples": len(examples),
        "train_queries": len(train_part.qrels),
        "dev_queries": len(dev.qrels),
        "dev_docs": len(corpus),
        "negatives_per_example": args.negatives_per_example,
        "batch_size": args.batch_size,
        "runs": {},
    }

    def schedule(name: str, lr: float, epochs: float, max_steps: int | None = None) -> Schedule:
        return Schedule(
            output_dir=args.out / name,
            epochs=epochs,
            max_steps=max_steps or args.max_steps,
            batch_size=args.batch_size,
            learning_rate=lr,
            seed=42,
            eval_steps=10_000 if max_steps else 20,
            save_steps=10_000,
            logging_steps=5,
            progress=False,
        )

    def splade(name: str, lr: float, lam: float, run_device: str, steps: int | None = None) -> Path:
        started = time.perf_counter()
        final = train_splade(
            SpladeTrainConfig(
                schedule=schedule(name, lr, args.splade_epochs, steps),
                model=args.splade_model,
                lambda_query=lam,
                lambda_document=lam,
                lambda_warmup_steps=30,
                device=run_device,
            ),
            examples,
            dev=None if steps else (dev, corpus),
        )
        log = args.out / name / "training_log.jsonl"
        facts["runs"][name] = {
            "kind": "splade",
            "lr": lr,
            "lambda_document": lam,
            "lambda_query": lam,
            "device": run_device,
            "seconds": round(time.perf_counter() - started, 1),
            "seconds_per_step": round(seconds_per_step(log), 4),
            "dev_ndcg@10": dev_score(log, "eval_dev_dot_ndcg@10"),
            "dev_doc_terms": dev_score(log, "eval_dev_corpus_active_dims"),
            "dev_query_terms": dev_score(log, "eval_dev_query_active_dims"),
        }
        print(name, facts["runs"][name], flush=True)
        return final

    def colbert(name: str, lr: float, run_device: str, steps: int | None = None) -> Path:
        started = time.perf_counter()
        final = train_colbert(
            ColbertTrainConfig(
                schedule=schedule(name, lr, args.colbert_epochs, steps),
                model=args.colbert_model,
                device=run_device,
            ),
            examples,
            dev=None if steps else (dev.queries, corpus, relevant),
        )
        log = args.out / name / "training_log.jsonl"
        facts["runs"][name] = {
            "kind": "colbert",
            "lr": lr,
            "device": run_device,
            "seconds": round(time.perf_counter() - started, 1),
            "seconds_per_step": round(seconds_per_step(log), 4),
            "dev_ndcg@10": dev_score(log, "eval_dev_maxsim_ndcg@10"),
        }
        print(name, facts["runs"][name], flush=True)
        return final

    if args.speed_steps and device != "cpu":
        for run_device in ("cpu", device):
            splade(
                f"speed-splade-{run_device}", 2e-5, args.lambda_main, run_device, args.speed_steps
            )
            colbert(f"speed-colbert-{run_device}", 2e-5, run_device, args.speed_steps)

    best: dict[str, tuple[float, str]] = {}
    for lr in [float(v) for v in args.splade_lrs.split(",")]:
        name = f"splade-lr{lr:g}-lambda{args.lambda_main:g}"
        splade(name, lr, args.lambda_main, device)
        score = facts["runs"][name]["dev_ndcg@10"]
        if "splade" not in best or score > best["splade"][0]:
            best["splade"] = (score, name)
    chosen_lr = facts["runs"][best["splade"][1]]["lr"]
    for lam in [float(v) for v in args.lambda_sweep.split(",") if v]:
        splade(f"splade-lr{chosen_lr:g}-lambda{lam:g}", chosen_lr, lam, device)
    for lr in [float(v) for v in args.colbert_lrs.split(",")]:
        name = f"colbert-lr{lr:g}"
        colbert(name, lr, device)
        score = facts["runs"][name]["dev_ndcg@10"]
        if "colbert" not in best or score > best["colbert"][0]:
            best["colbert"] = (score, name)
    facts["chosen"] = {kind: name for kind, (_, name) in best.items()}
    facts["chosen_splade_lr"] = chosen_lr
    (args.out / "facts.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts["chosen"]))


if __name__ == "__main__":
    main()
