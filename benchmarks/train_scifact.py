"""Train SPLADE (a λ_d sweep) and ColBERT on SciFact's train queries; time GPU against CPU.

Runs wherever torch runs; it needs no cluster (evaluation through the node happens after,
with ``splade-es eval`` and ``benchmarks/eval_sweep.py``). Each configuration is trained on
90% of the 809 train queries; the other 10% are the dev split that picks the learning rate.

Speed is measured in steady state, in the same run, the same way on every device: each model
trains ``--speed-warmup`` (W) steps that are not timed (start-up, CUDA context, kernel
selection), then ``--speed-steps`` (S) steps timed one by one (the clock reads at the end of
every optimiser step, after ``torch.cuda.synchronize()`` on a GPU). ``facts.json`` records the
window and the median and mean seconds per step on the CPU, and on the GPU when there is one,
with their ratio. The CPU is always measured, so the script (and this measurement) also runs on
a machine without a GPU.

    python benchmarks/train_scifact.py --data ../shared/datasets/scifact \
        --negatives runs/scifact-negatives.jsonl --out runs/trained
    # smoke, CPU only:
    python benchmarks/train_scifact.py ... --max-steps 2 --speed-warmup 1 --speed-steps 2 \
        --splade-lrs 2e-5 --colbert-lrs 2e-5 --lambda-sweep "" --dev-docs 50
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from colbert_rerank.training import ColbertTrainConfig, train_colbert
from colbert_rerank.training_support import Schedule, read_log
from splade_es.training.data import (
    Judgements,
    TrainingExample,
    build_examples,
    dev_corpus,
    load_judgements,
    split_dev,
)
from splade_es.training.negatives import load_negatives
from splade_es.training.splade import SpladeTrainConfig, train_splade


def dev_score(log_path: Path, key: str) -> float:
    values = [r[key] for r in read_log(log_path) if key in r]
    return float(values[-1]) if values else float("nan")


def seconds_per_step(log_path: Path) -> float:
    """The whole run's train time over its steps (start-up and dev evaluations included)."""
    final = [r for r in read_log(log_path) if "train_runtime" in r][-1]
    return float(final["train_runtime"]) / max(int(final["step"]), 1)


@contextmanager
def step_clock(device: str) -> Iterator[list[float]]:
    """Times (``time.perf_counter``) at the end of every optimiser step taken inside the block.

    A global optimiser post-step hook, so it times the trainers without changing them; on a
    GPU it synchronises first, so a step's time includes its queued kernels.
    """
    ends: list[float] = []
    on_gpu = device.startswith("cuda")

    def tick(*_: Any) -> None:
        if on_gpu:
            torch.cuda.synchronize()
        ends.append(time.perf_counter())

    handle = register_optimizer_step_post_hook(tick)
    try:
        yield ends
    finally:
        handle.remove()


def steady_state(ends: list[float], warmup: int, steps: int) -> dict[str, Any]:
    """Seconds per step of the ``steps`` steps after the first ``warmup`` ones.

    Raises:
        RuntimeError: the clock saw another number of optimiser steps than ``warmup + steps``.
    """
    if len(ends) != warmup + steps:
        raise RuntimeError(
            f"{len(ends)} optimiser steps timed, expected {warmup} + {steps}: a step was skipped "
            "(fp16 overflow?) or another optimiser ran."
        )
    times = [b - a for a, b in zip(ends[warmup - 1 : -1], ends[warmup:], strict=True)]
    return {
        "median_s_per_step": round(statistics.median(times), 4),
        "mean_s_per_step": round(statistics.fmean(times), 4),
        "step_seconds": [round(t, 4) for t in times],
    }


@dataclass
class Runs:
    """The data and options every training run shares, and the facts collected so far."""

    args: argparse.Namespace
    examples: list[TrainingExample]
    dev: Judgements
    corpus: dict[str, str]
    facts: dict[str, Any] = field(default_factory=dict)

    def schedule(self, name: str, lr: float, epochs: float, steps: int | None) -> Schedule:
        return Schedule(
            output_dir=self.args.out / name,
            epochs=epochs,
            max_steps=steps or self.args.max_steps,
            batch_size=self.args.batch_size,
            learning_rate=lr,
            seed=42,
            eval_steps=10_000 if steps else 20,
            save_steps=10_000,
            logging_steps=5,
            progress=False,
        )

    def splade(
        self, name: str, lr: float, lam: float, device: str, steps: int | None = None
    ) -> None:
        """Train one SPLADE model (``steps`` set: a speed run, no dev evaluation)."""
        started = time.perf_counter()
        train_splade(
            SpladeTrainConfig(
                schedule=self.schedule(name, lr, self.args.splade_epochs, steps),
                model=self.args.splade_model,
                lambda_query=lam,
                lambda_document=lam,
                lambda_warmup_steps=30,
                device=device,
            ),
            self.examples,
            dev=None if steps else (self.dev, self.corpus),
        )
        log = self.args.out / name / "training_log.jsonl"
        self.record(name, started, log, "splade", lr, device)
        self.facts["runs"][name].update(
            lambda_document=lam,
            lambda_query=lam,
            **{
                "dev_ndcg@10": dev_score(log, "eval_dev_dot_ndcg@10"),
                "dev_doc_terms": dev_score(log, "eval_dev_corpus_active_dims"),
                "dev_query_terms": dev_score(log, "eval_dev_query_active_dims"),
            },
        )
        print(name, self.facts["runs"][name], flush=True)

    def colbert(self, name: str, lr: float, device: str, steps: int | None = None) -> None:
        """Train one ColBERT model (``steps`` set: a speed run, no dev evaluation)."""
        started = time.perf_counter()
        relevant = {q: {d for d, r in self.dev.qrels[q].items() if r > 0} for q in self.dev.qrels}
        train_colbert(
            ColbertTrainConfig(
                schedule=self.schedule(name, lr, self.args.colbert_epochs, steps),
                model=self.args.colbert_model,
                device=device,
            ),
            self.examples,
            dev=None if steps else (self.dev.queries, self.corpus, relevant),
        )
        log = self.args.out / name / "training_log.jsonl"
        self.record(name, started, log, "colbert", lr, device)
        self.facts["runs"][name]["dev_ndcg@10"] = dev_score(log, "eval_dev_maxsim_ndcg@10")
        print(name, self.facts["runs"][name], flush=True)

    def record(
        self, name: str, started: float, log: Path, kind: str, lr: float, device: str
    ) -> None:
        self.facts["runs"][name] = {
            "kind": kind,
            "lr": lr,
            "device": device,
            "seconds": round(time.perf_counter() - started, 1),
            "seconds_per_step": round(seconds_per_step(log), 4),
        }


def measure_speed(runs: Runs, device: str) -> dict[str, Any]:
    """Steady-state seconds per step of each model on the CPU and, if any, on ``device``."""
    warmup, steps = runs.args.speed_warmup, runs.args.speed_steps
    devices = ["cpu"] if device == "cpu" else ["cpu", device]
    speed: dict[str, Any] = {"warmup_steps": warmup, "timed_steps": steps}
    for kind in ("splade", "colbert"):
        speed[kind] = {}
        for run_device in devices:
            name = f"speed-{kind}-{run_device}"
            with step_clock(run_device) as ends:
                if kind == "splade":
                    runs.splade(name, 2e-5, runs.args.lambda_main, run_device, warmup + steps)
                else:
                    runs.colbert(name, 2e-5, run_device, warmup + steps)
            speed[kind][run_device] = steady_state(ends, warmup, steps)
            print(name, speed[kind][run_device], flush=True)
        if len(devices) == 2:
            cpu, gpu = speed[kind]["cpu"], speed[kind][device]
            speed[kind]["speedup_median"] = round(
                cpu["median_s_per_step"] / gpu["median_s_per_step"], 1
            )
            speed[kind]["speedup_mean"] = round(cpu["mean_s_per_step"] / gpu["mean_s_per_step"], 1)
    return speed


def train_all(runs: Runs, device: str) -> None:
    """The SPLADE learning rates, the λ sweep at the best one, the ColBERT learning rates."""
    args, facts = runs.args, runs.facts
    best: dict[str, tuple[float, str]] = {}
    for lr in [float(v) for v in args.splade_lrs.split(",")]:
        name = f"splade-lr{lr:g}-lambda{args.lambda_main:g}"
        runs.splade(name, lr, args.lambda_main, device)
        score = facts["runs"][name]["dev_ndcg@10"]
        if "splade" not in best or score > best["splade"][0]:
            best["splade"] = (score, name)
    chosen_lr = facts["runs"][best["splade"][1]]["lr"]
    for lam in [float(v) for v in args.lambda_sweep.split(",") if v]:
        runs.splade(f"splade-lr{chosen_lr:g}-lambda{lam:g}", chosen_lr, lam, device)
    for lr in [float(v) for v in args.colbert_lrs.split(",")]:
        name = f"colbert-lr{lr:g}"
        runs.colbert(name, lr, device)
        score = facts["runs"][name]["dev_ndcg@10"]
        if "colbert" not in best or score > best["colbert"][0]:
            best["colbert"] = (score, name)
    facts["chosen"] = {kind: name for kind, (_, name) in best.items()}
    facts["chosen_splade_lr"] = chosen_lr


def parse_args() -> argparse.Namespace:
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
    parser.add_argument(
        "--speed-warmup", type=int, default=2, help="W: untimed steps before the timed ones."
    )
    parser.add_argument(
        "--speed-steps", type=int, default=5, help="S: timed steps per device (0: no timing)."
    )
    parser.add_argument("--max-steps", type=int, help="Cap every run (smoke tests).")
    parser.add_argument("--dev-docs", type=int, default=1000)
    args = parser.parse_args()
    if args.speed_steps and args.speed_warmup < 1:
        parser.error("--speed-warmup must be >= 1: the first timed step starts where one ends.")
    return args


def main() -> None:
    args = parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    judgements = load_judgements(args.data, "train")
    negatives = load_negatives(args.negatives)
    train_part, dev = split_dev(judgements, 0.1, seed=42)
    if dev is None:
        raise ValueError("split_dev kept no dev queries: check the train qrels.")
    examples = build_examples(train_part, negatives, args.negatives_per_example)
    runs = Runs(args, examples, dev, dev_corpus(dev, negatives, args.dev_docs, seed=42))
    runs.facts.update(
        {
            "device": torch.cuda.get_device_name(0)
            if device.startswith("cuda")
            else platform.processor() or "cpu",
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "examples": len(examples),
            "train_queries": len(train_part.qrels),
            "dev_queries": len(dev.qrels),
            "dev_docs": len(runs.corpus),
            "negatives_per_example": args.negatives_per_example,
            "batch_size": args.batch_size,
            "runs": {},
        }
    )
    if args.speed_steps:
        runs.facts["speed"] = measure_speed(runs, device)
    train_all(runs, device)
    (args.out / "facts.json").write_text(json.dumps(runs.facts, indent=2) + "\n")
    print(json.dumps(runs.facts["chosen"]))


if __name__ == "__main__":
    main()
