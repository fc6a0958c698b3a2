"""Hard-negative mining from the user's own index, cached to a JSONL file.

For each judged query the first stage (BM25, SPLADE or both) retrieves down to ``rank_end``;
hits ranked ``rank_start..rank_end`` that are not judged positives are the query's hard
negatives (both sources are interleaved, duplicates dropped), ``count`` of them kept. The cache
file starts with the mining settings; a cache made with other settings is refused, never
silently reused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from colbert_rerank.checks import check_positive_ints
from colbert_rerank.progress import progress_bar

if TYPE_CHECKING:  # mining runs searches; loading a cache needs no client
    from splade_es.search.searcher import Hit, Searcher

SOURCES = ("bm25", "splade")


@dataclass(frozen=True)
class MiningConfig:
    """What to mine.

    Attributes:
        index: the index searched (the corpus the training judgements point to).
        sources: ``bm25`` and/or ``splade``.
        rank_start / rank_end: 1-based rank range of hits to take from (skipping the very top
            guards against unjudged positives).
        count: negatives kept per query.
    """

    index: str
    sources: tuple[str, ...] = ("bm25", "splade")
    rank_start: int = 1
    rank_end: int = 50
    count: int = 10

    def __post_init__(self) -> None:
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown or not self.sources:
            raise ValueError(f"sources {list(self.sources)}: choose from {', '.join(SOURCES)}.")
        if not 1 <= self.rank_start <= self.rank_end:
            raise ValueError(
                f"rank range {self.rank_start}..{self.rank_end}: expected 1 <= start <= end."
            )
        check_positive_ints(self, "count")


def select_negatives(
    rankings: Sequence[Sequence[str]], judged_positive: set[str], config: MiningConfig
) -> list[str]:
    """Interleave the sources' ranked ids in the rank range, minus positives and duplicates."""
    windows = [list(r)[config.rank_start - 1 : config.rank_end] for r in rankings]
    chosen: list[str] = []
    seen: set[str] = set()
    for position in range(max((len(w) for w in windows), default=0)):
        for window in windows:
            if position < len(window):
                doc = window[position]
                if doc not in judged_positive and doc not in seen:
                    seen.add(doc)
                    chosen.append(doc)
    return chosen[: config.count]


def mine_negatives(
    searcher: Searcher,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    config: MiningConfig,
    progress: bool = True,
) -> dict[str, list[str]]:
    """``{query id: hard negative ids}`` for every judged query."""
    runners: dict[str, Callable[[str, int], list[Hit]]] = {
        "bm25": searcher.bm25,
        "splade": searcher.search,
    }
    mined: dict[str, list[str]] = {}
    bar = progress_bar(
        sorted(qrels), total=len(qrels), desc="mining negatives", unit="query", enabled=progress
    )
    for query_id in bar:
        text = queries[query_id]
        rankings = [[h.id for h in runners[s](text, config.rank_end)] for s in config.sources]
        positives = {d for d, relevance in qrels[query_id].items() if relevance > 0}
        mined[query_id] = select_negatives(rankings, positives, config)
    return mined


def save_negatives(
    path: Path, config: MiningConfig, negatives: Mapping[str, Sequence[str]]
) -> None:
    """Write the settings line, then one ``{"query_id", "negatives"}`` line per query."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"mining": asdict(config)}) + "\n")
        for query_id in sorted(negatives):
            record = {"query_id": query_id, "negatives": list(negatives[query_id])}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    temporary.replace(path)


def load_negatives(path: Path, config: MiningConfig | None = None) -> dict[str, list[str]]:
    """Read a cache written by :func:`save_negatives`; with ``config``, refuse other settings."""
    with path.open(encoding="utf-8") as handle:
        header = json.loads(handle.readline() or "{}")
        if "mining" not in header:
            raise ValueError(f"{path} is not a negatives cache (no settings line): delete it.")
        if config is not None:
            settings = dict(header["mining"], sources=tuple(header["mining"]["sources"]))
            if settings != asdict(config):
                raise ValueError(
                    f"{path} was mined with {header['mining']}, not {asdict(config)}: delete it "
                    "or pass another --negatives-file."
                )
        negatives = {}
        for number, line in enumerate(handle, start=2):
            record = json.loads(line)
            if not isinstance(record.get("negatives"), list):
                raise ValueError(f"{path}:{number}: no negatives list.")
            negatives[str(record["query_id"])] = [str(d) for d in record["negatives"]]
    return negatives
