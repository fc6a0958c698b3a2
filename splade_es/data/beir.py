"""Queries and relevance judgements of a BEIR-layout dataset folder."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def available_splits(directory: Path) -> list[str]:
    return sorted(p.stem for p in (directory / "qrels").glob("*.tsv"))


def load_qrels(directory: Path, split: str) -> dict[str, dict[str, int]]:
    """``{query id: {document id: relevance}}`` from ``qrels/<split>.tsv``."""
    path = directory / "qrels" / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(
            f"No qrels for split {split!r} in {directory}: available splits are "
            f"{available_splits(directory) or 'none'}."
        )
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty.")
        for number, row in enumerate(reader, start=2):
            if len(row) < 3:
                raise ValueError(f"{path}:{number}: expected query-id, corpus-id, score.")
            try:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
            except ValueError as error:
                raise ValueError(f"{path}:{number}: score {row[2]!r} is not an integer.") from error
    return qrels


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of a JSONL file."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON ({error.msg}).") from error
            yield number, value


def load_queries(directory: Path, ids: set[str] | None = None) -> dict[str, str]:
    """``{query id: text}`` from ``queries.jsonl`` (only ``ids`` when given)."""
    path = directory / "queries.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no queries.jsonl (not a BEIR folder).")
    queries: dict[str, str] = {}
    for _, record in iter_jsonl(path):
        query_id = str(record.get("_id"))
        if ids is None or query_id in ids:
            queries[query_id] = str(record.get("text", ""))
    return queries
