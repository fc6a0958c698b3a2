"""A corpus where hybrid fusion changes the top hit (written for the tests, no external data).

For :data:`QUERY`, with the splade-tiny model:

- BM25 puts ``what-best`` first (it repeats the rare query words "what", "best", "is", "the"
  in a short text), while SPLADE ranks it only fourth (it has nothing about espresso).
- SPLADE puts ``cafe`` first (a long menu, rich in coffee terms), while BM25 ranks it last of
  the lexical matches (one "espresso" in a long text).
- ``espresso`` is second in both, so reciprocal rank fusion puts it first
  (``2/62`` against ``1/61 + 1/64`` for ``what-best`` and ``1/61 + 1/65`` for ``cafe``).
- Weighted fusion of min-max scores follows its weight instead: at 0.5 BM25's wide margin
  wins (``what-best``), at 0.9 SPLADE's (``cafe``).
"""

from __future__ import annotations

QUERY = "what is the best espresso"

DOCS: list[dict[str, str]] = [
    {"_id": "what-best", "title": "Best", "text": "What is the best? The best is what it is."},
    {
        "_id": "cafe",
        "title": "Cafe notes",
        "text": (
            "Our cafe serves espresso, coffee, cappuccino, latte, mocha, macchiato and "
            "americano, made from arabica and robusta beans that we roast, grind and brew every "
            "morning for customers who queue at the counter, with milk foam, sugar, cream and "
            "pastries, croissants, muffins and cakes on the side, plus tea, juice and water, "
            "seven days a week in the old town square near the station and the museum."
        ),
    },
    {"_id": "espresso", "title": "Espresso", "text": "Espresso is strong coffee."},
    {"_id": "latte", "title": "Latte", "text": "A latte is espresso with milk."},
    {
        "_id": "bread",
        "title": "Bread",
        "text": "A sourdough starter of flour and water ferments with wild yeast.",
    },
    {
        "_id": "tea",
        "title": "Tea",
        "text": "Green tea leaves are steamed and dried before brewing.",
    },
    {"_id": "chess", "title": "Chess", "text": "The Sicilian defence is a popular chess opening."},
]

BM25_TOP = "what-best"
SPLADE_TOP = "cafe"
RRF_TOP = "espresso"
