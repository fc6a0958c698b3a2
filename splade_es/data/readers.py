"""Corpus readers: JSONL, CSV and BEIR folders, streamed, validated record by record.

Readers yield a :class:`~splade_es.data.corpus.Document` or a
:class:`~splade_es.data.corpus.Rejected` record for every input (nothing disappears between
the file and the index). :func:`read_corpus` also reads the first records at once, so a file
that cannot be a corpus fails before a caller creates anything.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from splade_es.data.corpus import Document, FieldNames, Limits, Rejected, make_document
from splade_es.data.fields import FieldType

CorpusFormat = Literal["jsonl", "csv", "beir"]


def read_jsonl(
    path: Path, names: FieldNames = FieldNames(), limits: Limits = Limits()
) -> Iterator[Document | Rejected]:
    """One JSON object per line; bad lines (JSON or UTF-8) become Rejected records."""
    with _open_binary(path) as handle:
        position = -1
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            position += 1
            if position == 0 and line.lstrip().startswith(b"["):
                raise ValueError(
                    f"{path} holds a JSON array, not JSON Lines: write one object per line "
                    f"(e.g. jq -c '.[]' {path.name} > {path.stem}.jsonl) and index that file."
                )
            raw, problem = _parsed(line, number)
            if problem is not None:
                yield Rejected(f"<line {number}>", position, problem, unreadable=True)
                continue
            yield make_document(raw, position, names, limits)


def _parsed(line: bytes, number: int) -> tuple[Any, str | None]:
    """One JSONL line's value, or why it cannot be read."""
    try:
        return json.loads(line.decode("utf-8")), None
    except UnicodeDecodeError as error:
        return None, f"line {number} is not valid UTF-8 ({error})"
    except json.JSONDecodeError as error:
        return None, f"line {number} is not JSON ({error.msg})"
    except RecursionError:
        return None, f"line {number} nests JSON too deeply to parse"


def read_csv(
    path: Path, names: FieldNames = FieldNames(id="id"), limits: Limits = Limits()
) -> Iterator[Document | Rejected]:
    """A CSV file with a header row naming the id, text (and title) columns.

    Parsed strictly: a record whose quoting is broken (a quoted field never closed, as in a
    file cut off mid-write, or text after a closing quote) becomes a Rejected record instead
    of being indexed with its text cut.
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with _open_binary(path) as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.DictReader(text, strict=True)
        try:
            header = reader.fieldnames or []
        except csv.Error as error:
            raise ValueError(
                f"{path}: the CSV header row cannot be read ({error}): fix its quoting."
            ) from None
        missing = [n for n in (names.id, names.text) if n not in header]
        if missing:
            raise ValueError(
                f"{path}: CSV header {header} lacks {missing}; set --id-field/--text-field to "
                "the columns that hold the id and the text."
            )
        yield from _csv_records(reader, names, limits)


def _csv_records(
    reader: csv.DictReader[str], names: FieldNames, limits: Limits
) -> Iterator[Document | Rejected]:
    position = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Rejected(
                f"<record {position}>",
                position,
                f"CSV record {position} (ending at line {reader.reader.line_num}) is malformed "
                f"({error}): a quoted field is not closed or text follows a closing quote; fix "
                "its quoting",
                unreadable=True,
            )
        else:
            yield make_document(row, position, names, limits)
        position += 1


def read_beir(
    directory: Path,
    limits: Limits = Limits(),
    keep: tuple[str, ...] = (),
    types: Mapping[str, FieldType] | None = None,
) -> Iterator[Document | Rejected]:
    """``corpus.jsonl`` of a BEIR dataset folder (``_id``, ``title``, ``text``); ``keep`` and
    ``types`` as in :class:`~splade_es.data.corpus.FieldNames`."""
    corpus = directory / "corpus.jsonl"
    if not corpus.is_file():
        raise FileNotFoundError(
            f"{directory} is not a BEIR folder: it has no corpus.jsonl (expected corpus.jsonl, "
            "queries.jsonl and qrels/<split>.tsv)."
        )
    names = FieldNames("_id", "text", "title", keep, dict(types or {}))
    yield from read_jsonl(corpus, names, limits)


def read_corpus(
    path: Path,
    corpus_format: CorpusFormat | None = None,
    names: FieldNames | None = None,
    limits: Limits = Limits(),
) -> Iterator[Document | Rejected]:
    """Read ``path`` in ``corpus_format`` (guessed from the path when ``None``)."""
    chosen = corpus_format or guess_format(path)
    if chosen == "beir":
        keep, types = (names.keep, names.types) if names else ((), None)
        reader = read_beir(path, limits, keep, types)
    elif chosen == "csv":
        reader = read_csv(path, names or FieldNames(id="id"), limits)
    elif chosen == "jsonl":
        reader = read_jsonl(path, names or FieldNames(), limits)
    else:
        raise ValueError(f"corpus format {chosen!r}: expected jsonl, csv or beir.")
    return checked_start(reader, str(path))


CHECKED_RECORDS = 10


def checked_start(
    items: Iterator[Document | Rejected], source: str
) -> Iterator[Document | Rejected]:
    """``items`` unchanged, once its first records were read: a file that cannot be a corpus
    fails now, before a caller creates anything, and the rest stays lazy.

    Raises:
        ValueError: the reader refused the file (a CSV header without the id column, a JSON
            array, ...), none of the first ``CHECKED_RECORDS`` records could be parsed (a
            pretty-printed JSON file read as JSON Lines), or none has the id (or text) field:
            a wrong ``--id-field``/``--text-field``.
        FileNotFoundError: the file or BEIR folder is not there.
    """
    head = list(itertools.islice(items, CHECKED_RECORDS))
    rejected = [r for r in head if isinstance(r, Rejected)]
    if not head or len(rejected) < len(head):
        return itertools.chain(head, items)
    if all(r.unreadable for r in rejected):
        raise ValueError(
            f"{source}: none of the first {len(head)} records could be read "
            f"({rejected[0].reason}): is the file in the format read (--format jsonl, csv or "
            "beir)? JSON Lines has one JSON object per line."
        )
    fields = sorted({r.missing_field or "" for r in rejected})
    if "" not in fields:
        raise ValueError(
            f"{source}: none of the first {len(head)} records has the field {fields[0]!r} "
            f"({rejected[0].reason}). Set --id-field and --text-field (FieldNames in Python) "
            "to the fields that hold the id and the text."
        )
    return itertools.chain(head, items)


def guess_format(path: Path) -> CorpusFormat:
    if path.is_dir():
        return "beir"
    suffixes = "".join(path.suffixes[-2:]).lower()
    if ".csv" in suffixes:
        return "csv"
    if ".jsonl" in suffixes or ".json" in suffixes:
        return "jsonl"
    raise ValueError(
        f"Cannot tell the format of {path}: pass --format jsonl, csv or beir "
        "(a BEIR corpus is a folder)."
    )


def _open_binary(path: Path) -> io.BufferedReader:
    if not path.exists():
        raise FileNotFoundError(f"Corpus file {path} does not exist.")
    if path.suffix == ".gz":
        import gzip

        return io.BufferedReader(gzip.open(path, "rb"))
    return path.open("rb")
