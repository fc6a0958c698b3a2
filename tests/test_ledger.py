"""The on-disk id ledger of a bulk run: duplicates, checkpoints, nothing left behind."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from splade_es.indexing.ledger import IdLedger


def test_a_repeated_id_gives_its_first_position():
    ledger = IdLedger()
    assert ledger.first_seen("a", 0) is None
    assert ledger.first_seen("b", 1) is None
    assert ledger.first_seen("a", 5) == 0
    assert ledger.first_seen("a", 9) == 0
    ledger.close()


def test_checkpoint_pairs_and_the_latest_digest_wins(tmp_path):
    checkpoint = tmp_path / "ck.tsv"
    rows = [("a\tb", "d1"), ("x", "old"), ("x", "new"), ('q"uote', "d2")]
    cut = '"y"\t12ab"z\tff\n'  # a line cut short by a killed run, then another run's line
    lines = "".join(f"{json.dumps(i)}\t{d}\n" for i, d in rows)
    checkpoint.write_text(lines + "garbage\n" + cut + "5\tnot-an-id\n")
    ledger = IdLedger()
    assert ledger.load_checkpoint(checkpoint) == 4
    assert ledger.is_done("a\tb", "d1") and ledger.is_done('q"uote', "d2")
    assert ledger.is_done("x", "new") and not ledger.is_done("x", "old")
    assert not ledger.is_done("a\tb", "other") and not ledger.is_done("missing", "d1")
    assert ledger.load_checkpoint(tmp_path / "absent.tsv") == 0
    ledger.close()


def test_the_file_is_gone_while_in_use_and_after():
    before = set(Path(tempfile.gettempdir()).glob("splade-es-ids-*"))
    ledger = IdLedger()
    for i in range(20_000):
        ledger.first_seen(f"id-{i}", i)
    assert set(Path(tempfile.gettempdir()).glob("splade-es-ids-*")) == before
    assert ledger.first_seen("id-19999", 0) == 19999
    ledger.close()
