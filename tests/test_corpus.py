"""Input validation: every bad record becomes a Rejected with a reason, nothing vanishes."""

from __future__ import annotations

import json

import pytest

from splade_es.data.corpus import (
    Document,
    FieldNames,
    Limits,
    Rejected,
    from_records,
    make_document,
)
from splade_es.data.readers import guess_format, read_beir, read_corpus, read_csv, read_jsonl

NAMES = FieldNames()
LIMITS = Limits(max_text_bytes=100)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("just a string", "record is str, not an object"),
        ({"text": "t"}, "id field '_id' is missing"),
        ({"_id": True, "text": "t"}, "id field '_id' is bool True"),
        ({"_id": 1.5, "text": "t"}, "id field '_id' is float 1.5"),
        ({"_id": "  ", "text": "t"}, "id '  ' is empty or whitespace"),
        ({"_id": "x" * 513, "text": "t"}, "longer than 512 bytes"),
        ({"_id": "a\ud800", "text": "t"}, "id is not valid UTF-8"),
        ({"_id": "a", "text": None}, "text field 'text' is missing, not a string"),
        ({"_id": "a", "text": ["list"]}, "text field 'text' is list"),
        ({"_id": "a", "text": "  \n\t"}, "text and title are empty or whitespace"),
        ({"_id": "a", "text": "ok", "title": 3}, "title field 'title' is int 3"),
        ({"_id": "a", "text": "bad \udcff"}, "text is not valid UTF-8"),
        ({"_id": "a", "text": "x" * 101}, "101 bytes, over the 100-byte limit"),
    ],
)
def test_bad_records_are_rejected_with_reasons(raw, reason):
    result = make_document(raw, 7, NAMES, LIMITS)
    assert isinstance(result, Rejected)
    assert reason in result.reason
    assert result.position == 7


def test_good_records():
    doc = make_document(
        {"_id": 12, "text": "body", "title": None, "year": 2020},
        0,
        FieldNames(keep=("year",)),
        LIMITS,
    )
    assert doc == Document(id="12", text="body", title="", fields={"year": 2020})
    assert doc.encoded_text == "body"
    titled = make_document({"_id": "a", "text": "", "title": "Only a title"}, 0, NAMES, LIMITS)
    assert isinstance(titled, Document) and titled.encoded_text == "Only a title"


def test_digest_follows_content():
    a = Document("1", "text")
    assert a.digest == Document("1", "text").digest
    assert a.digest != Document("1", "text!").digest
    assert a.digest != Document("1", "text", fields={"k": 1}).digest


def test_jsonl_reports_bad_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(
        b'{"_id": "1", "text": "good"}\n'
        b"not json\n"
        b"\n"
        b'{"_id": "3", "text": "bad \xff utf8"}\n'
        b'{"_id": "4", "text": "good too"}\n'
    )
    items = list(read_jsonl(path))
    assert [type(i).__name__ for i in items] == ["Document", "Rejected", "Rejected", "Document"]
    assert "line 2 is not JSON" in items[1].reason
    assert "line 4 is not valid UTF-8" in items[2].reason


def test_csv_reader_and_header_check(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,title,text\n1,T,"hello, world"\n2,,\n', encoding="utf-8")
    items = list(read_csv(path))
    assert items[0] == Document("1", "hello, world", "T")
    assert isinstance(items[1], Rejected)
    with pytest.raises(ValueError, match=r"lacks \['body'\]; set --id-field/--text-field"):
        list(read_csv(path, FieldNames(id="id", text="body")))


def test_from_records_and_guess_format(tmp_path):
    items = list(from_records([{"_id": "a", "text": "x"}, 5]))
    assert isinstance(items[0], Document) and isinstance(items[1], Rejected)
    assert guess_format(tmp_path) == "beir"
    assert guess_format(tmp_path / "x.jsonl.gz") == "jsonl"
    assert guess_format(tmp_path / "x.CSV") == "csv"
    with pytest.raises(ValueError, match=r"pass --format jsonl, csv or beir"):
        guess_format(tmp_path / "x.txt")


def test_beir_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a BEIR folder"):
        list(read_beir(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(read_corpus(tmp_path / "missing.jsonl"))


def test_gzip_jsonl(tmp_path):
    import gzip

    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "1", "text": "zipped"}) + "\n")
    assert list(read_corpus(path)) == [Document("1", "zipped")]
