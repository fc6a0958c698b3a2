"""Training data: judged queries over a corpus, checked, and the examples built from them.

Inputs are a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) or a
JSONL file of triples (``{"query": ..., "positive": ..., "negatives": [...]}``). Every check
runs before any training starts: an empty corpus, queries without a judged positive, judged
documents missing from the corpus and queries missing from ``queries.jsonl`` are errors that
name the ids.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from splade_es.data.beir import iter_jsonl, load_qrels, load_queries
from splade_es.data.corpus import Limits, Rejected
from splade_es.data.readers import read_beir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judgements:
    """Queries, their relevance judgements and the corpus texts they point to.

    Attributes:
        queries: ``{query id: text}`` for the judged queries.
        qrels: ``{query id: {document id: relevance}}`` (relevance > 0 is a positive).
        corpus: ``{document id: title + text}``.
    """

    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]
    corpus: Mapping[str, str]

    def positives(self, query_id: str) -> list[str]:
        """The documents judged relevant (relevance > 0) for ``query_id``."""
        return [d for d, relevance in self.qrels[query_id].items() if relevance > 0]

    def subset(self, query_ids: Sequence[str]) -> Judgements:
        """The same corpus with only ``query_ids``."""
        return Judgements(
            {q: self.queries[q] for q in query_ids},
            {q: self.qrels[q] for q in query_ids},
            self.corpus,
        )


@dataclass(frozen=True)
class TrainingExample:
    """One training row: a query, one judged positive, hard negatives (maybe none)."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()


def _sample(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check_judgements(judgements: Judgements) -> None:
    """Raise ValueError naming what makes ``judgements`` unusable for training."""
    if not judgements.corpus:
        raise ValueError("The corpus is empty: training needs the documents the qrels judge.")
    if not judgements.qrels:
        raise ValueError("No judged query: the qrels split has no rows.")
    without = [q for q in judgements.qrels if not judgements.positives(q)]
    if without:
        raise ValueError(
            f"{len(without)} queries have no judged positive (relevance > 0): {_sample(without)}. "
            "Give each a relevant document or remove its rows from the qrels."
        )
    missing_queries = [q for q in judgements.qrels if q not in judgements.queries]
    if missing_queries:
        raise ValueError(
            f"{len(missing_queries)} judged queries are not in queries.jsonl: "
            f"{_sample(missing_queries)}. The qrels and queries files do not belong together."
        )
    missing = sorted(
        {d for q in judgements.qrels for d in judgements.qrels[q]} - set(judgements.corpus)
    )
    if missing:
        raise ValueError(
            f"{len(missing)} judged documents are not in the corpus: {_sample(missing)}. "
            "Add them to corpus.jsonl or drop their qrels rows."
        )


def load_judgements(directory: Path, split: str) -> Judgements:
    """The checked judgements of one qrels split of a BEIR folder."""
    qrels = load_qrels(directory, split)
    queries = load_queries(directory, set(qrels))
    corpus: dict[str, str] = {}
    rejected: list[Rejected] = []
    for item in read_beir(directory, Limits()):
        if isinstance(item, Rejected):
            rejected.append(item)
        else:
            corpus[item.id] = item.encoded_text
    judged = {d for q in qrels.values() for d in q}
    bad = [r for r in rejected if r.id in judged]
    if bad:
        raise ValueError(
            f"{len(bad)} judged documents are invalid in corpus.jsonl, e.g. {bad[0].id!r}: "
            f"{bad[0].reason}"
        )
    if rejected:
        logger.warning(
            "%d unjudged corpus records are invalid and left out of the training corpus, e.g. "
            "%s: %s",
            len(rejected),
            rejected[0].id,
            rejected[0].reason,
        )
    judgements = Judgements(queries, qrels, corpus)
    check_judgements(judgements)
    return judgements


def split_dev(
    judgements: Judgements, fraction: float, seed: int
) -> tuple[Judgements, Judgements | None]:
    """Hold out ``fraction`` of the queries (seeded) as a dev split; ``0`` keeps them all."""
    if not 0 <= fraction < 1:
        raise ValueError(f"dev fraction {fraction!r}: expected 0 <= fraction < 1 (e.g. 0.1).")
    ids = sorted(judgements.qrels)
    held = round(len(ids) * fraction)
    if held == 0:
        return judgements, None
    if held >= len(ids):
        raise ValueError(f"dev fraction {fraction} leaves no training query of {len(ids)}.")
    random.Random(seed).shuffle(ids)
    return judgements.subset(sorted(ids[held:])), judgements.subset(sorted(ids[:held]))


def build_examples(
    judgements: Judgements,
    negatives: Mapping[str, Sequence[str]],
    per_example: int,
) -> list[TrainingExample]:
    """One example per (query, positive); each takes ``per_example`` hard negatives.

    Negatives are the mined lists (judged positives already excluded), dealt out in turn to the
    query's positives so they do not all reuse the first ones. A query with fewer mined
    negatives than needed repeats them; one with none raises (mine first or pass 0).
    """
    if per_example < 0:
        raise ValueError(f"negatives per example {per_example!r}: expected >= 0.")
    examples = []
    starved = []
    for query_id in sorted(judgements.qrels):
        mined = [d for d in negatives.get(query_id, ()) if d in judgements.corpus]
        positives = judgements.positives(query_id)
        if per_example and not mined:
            starved.append(query_id)
            continue
        for number, positive in enumerate(sorted(positives)):
            start = number * per_example
            chosen = (
                [mined[(start + i) % len(mined)] for i in range(per_example)] if per_example else []
            )
            examples.append(
                TrainingExample(
                    judgements.queries[query_id],
                    judgements.corpus[positive],
                    tuple(judgements.corpus[d] for d in chosen),
                )
            )
    if starved:
        raise ValueError(
            f"{len(starved)} queries have no mined hard negative: {_sample(starved)}. Mine with a "
            "deeper --rank-end, or train with --negatives-per-example 0 (in-batch negatives only)."
        )
    return examples


def read_triples(path: Path) -> list[TrainingExample]:
    """Examples from JSONL lines ``{"query": str, "positive": str, "negatives": [str, ...]}``."""
    if not path.is_file():
        raise FileNotFoundError(f"No triples file at {path}.")
    examples = []
    for number, record in iter_jsonl(path):
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: expected an object with query/positive.")
        query, positive = record.get("query"), record.get("positive")
        negatives = record.get("negatives", [])
        if isinstance(record.get("negative"), str):
            negatives = [record["negative"]]
        for name, value in (("query", query), ("positive", positive)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"{path}:{number}: {name} is {value!r:.60}; expected a non-empty string."
                )
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise ValueError(f"{path}:{number}: negatives must be a list of strings.")
        examples.append(TrainingExample(str(query), str(positive), tuple(negatives)))
    if not examples:
        raise ValueError(f"{path} holds no triple.")
    widths = {len(e.negatives) for e in examples}
    if len(widths) > 1:
        raise ValueError(
            f"{path}: rows have different numbers of negatives {sorted(widths)}; every row needs "
            "the same number (the loss stacks them as columns)."
        )
    return examples


def dev_corpus(
    dev: Judgements, negatives: Mapping[str, Sequence[str]], size: int, seed: int
) -> dict[str, str]:
    """A dev corpus: the judged and mined documents of the dev queries plus random others, up
    to ``size`` (in-memory nDCG@10 during training; the node is for the real evaluation)."""
    chosen = {d for q in dev.qrels for d in dev.qrels[q]}
    chosen |= {d for q in dev.qrels for d in negatives.get(q, ()) if d in dev.corpus}
    others = sorted(set(dev.corpus) - chosen)
    random.Random(seed).shuffle(others)
    chosen |= set(others[: max(size - len(chosen), 0)])
    return {d: dev.corpus[d] for d in sorted(chosen)}
