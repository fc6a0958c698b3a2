"""The ids a bulk run has to remember, kept on disk so memory stays flat at any corpus size.

A run must know every id it has seen (a repeated id is reported, not silently overwritten) and
every document earlier runs acknowledged (the checkpoint, skipped without encoding). In Python
sets that costs ~100-200 bytes per document, which grows without bound with the corpus; here
it is a SQLite file in the temp folder with a small page cache (4 MB). The file is unlinked as
soon as it is open (POSIX keeps it alive for this process only), so even a run killed with
SIGKILL leaves nothing behind; where that is not allowed it is deleted on close.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from pathlib import Path

_SCHEMA = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -4096;
CREATE TABLE seen (id TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE done (id TEXT PRIMARY KEY, digest TEXT NOT NULL) WITHOUT ROWID;
"""


class IdLedger:
    """Ids seen in this run, and (id, digest) pairs acknowledged by earlier runs.

    Used by one thread at a time (the encoding thread); created in another, hence
    ``check_same_thread=False``.
    """

    def __init__(self) -> None:
        handle, path = tempfile.mkstemp(prefix="splade-es-ids-", suffix=".sqlite")
        os.close(handle)
        self.path = Path(path)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        with contextlib.suppress(OSError):  # e.g. Windows: removed in close() instead
            self.path.unlink()

    def load_checkpoint(self, path: Path | None) -> int:
        """Add the documents a checkpoint file lists; return how many lines it had."""
        if path is None or not path.exists():
            return 0
        lines = 0
        batch: list[tuple[str, str]] = []
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                raw_id, _, digest = line.rstrip("\n").rpartition("\t")
                try:
                    doc_id = json.loads(raw_id)
                except ValueError:  # a line cut short by a killed run: not acknowledged
                    continue
                if not isinstance(doc_id, str):
                    continue
                lines += 1
                batch.append((doc_id, digest))
                if len(batch) >= 10_000:
                    self._add_done(batch)
                    batch = []
        self._add_done(batch)
        return lines

    def _add_done(self, pairs: list[tuple[str, str]]) -> None:
        # a later line for the same id (the document changed and was indexed again) wins
        self._db.executemany("INSERT OR REPLACE INTO done VALUES (?, ?)", pairs)

    def is_done(self, doc_id: str, digest: str) -> bool:
        """Whether an earlier run acknowledged this exact document (same id and content)."""
        row = self._db.execute("SELECT digest FROM done WHERE id = ?", (doc_id,)).fetchone()
        return row is not None and row[0] == digest

    def first_seen(self, doc_id: str, position: int) -> int | None:
        """Record ``doc_id`` at ``position``; if it was seen before, return that position."""
        cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (doc_id, position))
        if cursor.rowcount == 1:
            return None
        row = self._db.execute("SELECT position FROM seen WHERE id = ?", (doc_id,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close and delete the file."""
        self._db.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
