"""A small corpus written by the project for tests (no external data)."""

from __future__ import annotations

import json
from pathlib import Path

DOCS: list[dict[str, str]] = [
    {
        "_id": "astro-1",
        "title": "Exoplanet transits",
        "text": "Astronomers detect exoplanets when a planet passes in front of its star and dims the light.",
    },
    {
        "_id": "astro-2",
        "title": "Black holes",
        "text": "A black hole bends light so strongly that nothing escapes beyond the event horizon.",
    },
    {
        "_id": "bio-1",
        "title": "Photosynthesis",
        "text": "Plants turn sunlight, water and carbon dioxide into glucose and oxygen in their chloroplasts.",
    },
    {
        "_id": "bio-2",
        "title": "DNA repair",
        "text": "Cells fix damaged DNA with enzymes; failures of repair can lead to cancer.",
    },
    {
        "_id": "med-1",
        "title": "Aspirin and the heart",
        "text": "Low-dose aspirin lowers the risk of a second heart attack in some patients.",
    },
    {
        "_id": "med-2",
        "title": "Vaccines",
        "text": "Vaccines train the immune system to recognise a virus before an infection.",
    },
    {
        "_id": "cook-1",
        "title": "Sourdough bread",
        "text": "A sourdough starter of flour and water ferments with wild yeast for days.",
    },
    {
        "_id": "cook-2",
        "title": "Espresso",
        "text": "Espresso forces hot water through finely ground coffee at high pressure.",
    },
    {
        "_id": "sport-1",
        "title": "Marathon training",
        "text": "Runners build endurance for a marathon with long slow runs each week.",
    },
    {
        "_id": "sport-2",
        "title": "Chess openings",
        "text": "The Sicilian defence is a popular chess opening answering e4 with c5.",
    },
    {
        "_id": "tech-1",
        "title": "Inverted indexes",
        "text": "Search engines map each term to the documents containing it: an inverted index.",
    },
    {
        "_id": "tech-2",
        "title": "Version 2.0 release",
        "text": "Release v2.0 improves speed by 35% over v1.9 (see the U.S. notes, e.g. section 3.1).",
    },
    {
        "_id": "geo-1",
        "title": "Volcanoes",
        "text": "Magma rises through the crust and erupts as lava from volcanoes.",
    },
    {
        "_id": "geo-2",
        "title": "Glaciers",
        "text": "Glaciers carve valleys as the ice slowly flows downhill under its own weight.",
    },
    {
        "_id": "intl-1",
        "title": "Café culture",
        "text": "À Paris, le café crème se boit en terrasse; naïve tourists order a latte.",
    },
    {
        "_id": "intl-2",
        "title": "東京の地下鉄",
        "text": "東京の地下鉄は毎日多くの人を運ぶ。Tokyo's subway carries millions every day.",
    },
]

QUERIES = {
    "q-aspirin": ("does aspirin prevent heart attacks", "med-1"),
    "q-coffee": ("how is espresso coffee made", "cook-2"),
    "q-planets": ("finding planets around other stars", "astro-1"),
    "q-index": ("how do search engines find documents", "tech-1"),
}


def write_jsonl(path: Path, docs: list[dict[str, object]] | None = None) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for doc in DOCS if docs is None else docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return path


def write_beir(folder: Path) -> Path:
    """The corpus as a BEIR folder with the queries above and one relevant doc each."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "corpus.jsonl")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, (text, _) in QUERIES.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{doc}\t1" for q, (_, doc) in QUERIES.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder
