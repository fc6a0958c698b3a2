"""A hit as a RAG framework's document: its page text and its metadata. Pure: no client, no
framework, no model.

The page text is the hit's text fields (``title`` and ``text`` by default: the fields the index
was built from) joined by a separator. The metadata is every other stored field of the hit plus
where it came from and how it scored: ``id``, ``index``, ``score`` (the final score), ``rank``,
``first_stage_score`` / ``first_stage_rank`` (the first stage's; equal to ``score`` / ``rank``
when nothing reranked the hit) and ``colbert_score`` (``None`` when not reranked).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from splade_es.search.results import Hit

__all__ = [
    "SCORE_KEYS",
    "Page",
    "PageFields",
    "check_stored_fields",
    "check_text_fields",
    "hit_page",
]

# Metadata keys the retrievers set themselves; a stored field of the same name is refused.
SCORE_KEYS: tuple[str, ...] = (
    "id",
    "index",
    "score",
    "rank",
    "first_stage_score",
    "first_stage_rank",
    "colbert_score",
)


@dataclass(frozen=True)
class PageFields:
    """Which stored fields make a hit's page text.

    Attributes:
        text: the fields, in order (e.g. ``("title", "text")``); ``None``: the text fields
            the index was built from (its ``_meta``, ``title`` and ``text`` by default). A hit
            lacking some of them (a document without a title) uses the others.
        separator: put between two fields' texts.

    Example:
        >>> PageFields(text=("title", "text"), separator=": ").text
        ('title', 'text')
    """

    text: tuple[str, ...] | None = None
    separator: str = "\n\n"

    def __post_init__(self) -> None:
        if self.text is None:
            return
        if isinstance(self.text, str) or not isinstance(self.text, tuple):
            raise ValueError(
                f"PageFields(text={self.text!r}): expected a tuple of field names, e.g. "
                f"text=({self.text!r},)."
            )
        if not self.text or not all(isinstance(f, str) and f.strip() for f in self.text):
            raise ValueError(
                f"PageFields(text={self.text!r}): name at least one stored text field, e.g. "
                "text=('title', 'text'), or pass None for the index's own text fields."
            )
        reserved = sorted(set(self.text) & set(SCORE_KEYS))
        if reserved:
            raise ValueError(
                f"PageFields(text={self.text!r}): {reserved} are metadata keys the retriever "
                f"sets ({', '.join(SCORE_KEYS)}), not stored text fields."
            )


@dataclass(frozen=True)
class Page:
    """One retrieved document, framework-neutral.

    Attributes:
        id: the document's ``_id``.
        text: the page text (the text fields joined).
        metadata: the other stored fields, plus :data:`SCORE_KEYS`.
        score: the final score (reranked, fused or first stage), as ``search_then_rerank``
            returned it.
    """

    id: str
    text: str
    metadata: dict[str, Any]
    score: float


def hit_page(
    hit: Hit, text_fields: Sequence[str], separator: str = "\n\n", hidden: Collection[str] = ()
) -> Page:
    """The page of ``hit``: its text fields joined, the rest of its source and its scores.

    Args:
        hit: a hit of :func:`~splade_es.search.pipeline.search_then_rerank`.
        text_fields: stored fields that make the text, in order; those the hit lacks (or
            holds empty) are skipped.
        separator: put between two fields' texts.
        hidden: stored fields left out of the metadata (the SPLADE weights, the ColBERT
            embeddings).

    Raises:
        ValueError: the hit has none of ``text_fields``, a text field holds something other
            than text, or a stored field is named like a score key.

    Example:
        >>> hit = Hit("d1", 2.5, 1, {"title": "Aspirin", "text": "Lowers risk.", "year": 2020}, "i")
        >>> page = hit_page(hit, ("title", "text"), ": ")
        >>> page.text, page.metadata["year"], page.metadata["first_stage_score"]
        ('Aspirin: Lowers risk.', 2020, 2.5)
    """
    return Page(
        id=hit.id,
        text=page_text(hit, text_fields, separator),
        metadata=page_metadata(hit, text_fields, hidden),
        score=hit.score,
    )


def page_text(hit: Hit, text_fields: Sequence[str], separator: str = "\n\n") -> str:
    """The hit's ``text_fields`` that it holds, joined by ``separator``.

    Raises:
        ValueError: it holds none of them, or one is not text (the message names the
            field, the hit and the fields it has).
    """
    parts = []
    for name in text_fields:
        value = hit.source.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ValueError(
                f"Text field {name!r} of hit {hit.id!r} holds {type(value).__name__} "
                f"{value!r:.40}, not text: leave it out of PageFields(text=...) (it stays in "
                "the metadata)."
            )
        parts.append(value)
    if not parts:
        raise ValueError(
            f"Hit {hit.id!r} of {hit.index!r} has none of the text fields {list(text_fields)} "
            f"(its stored fields: {sorted(hit.source)}): name the fields that hold its text "
            "with PageFields(text=(...)), and keep them in SearchConfig.source_includes."
        )
    return separator.join(parts)


def page_metadata(
    hit: Hit, text_fields: Sequence[str], hidden: Collection[str] = ()
) -> dict[str, Any]:
    """The hit's stored fields but the text and ``hidden`` ones, plus its scores.

    Raises:
        ValueError: a stored field is named like one of :data:`SCORE_KEYS`.
    """
    left_out = {*text_fields, *hidden}
    metadata = {k: v for k, v in hit.source.items() if k not in left_out}
    clashing = sorted(set(metadata) & set(SCORE_KEYS))
    if clashing:
        raise ValueError(
            f"Hit {hit.id!r} stores fields {clashing} whose names the retriever uses for its "
            f"scores ({', '.join(SCORE_KEYS)}): leave them out with "
            "SearchConfig(source_includes=[...]), or rename them when indexing."
        )
    reranked = hit.first_stage_rank is not None
    metadata.update(
        id=hit.id,
        index=hit.index,
        score=hit.score,
        rank=hit.rank,
        first_stage_score=hit.first_stage_score if reranked else hit.score,
        first_stage_rank=hit.first_stage_rank if reranked else hit.rank,
        colbert_score=hit.colbert_score,
    )
    return metadata


def check_text_fields(text_fields: Sequence[str], mapped: Mapping[str, str], index: str) -> None:
    """Refuse text fields that ``index`` does not map (a typo would give empty pages).

    Args:
        text_fields: the fields meant to make the page text.
        mapped: ``{field: mapped type}`` of those the index maps
            (:func:`splade_es.cluster.admin.field_types`).
        index: named in the message.

    Raises:
        ValueError: names the unmapped fields and the mapped ones.

    Example:
        >>> check_text_fields(["title", "text"], {"title": "text", "text": "text"}, "docs")
    """
    missing = [name for name in text_fields if name not in mapped]
    if missing:
        raise ValueError(
            f"Index {index!r} has no field {', '.join(map(repr, missing))} (of the text "
            f"fields {list(text_fields)}): name fields it stores with PageFields(text=(...)), "
            "e.g. the ones it was indexed from, or None for those."
        )


def check_stored_fields(stored: Collection[str], index: str) -> None:
    """Refuse stored fields that would go in the metadata under a name the retriever sets
    itself (:data:`SCORE_KEYS`): at construction, not at the first query.

    Args:
        stored: the fields the hits' metadata would hold (the returned stored fields but the
            text ones and the SPLADE and ColBERT fields).
        index: named in the message.

    Raises:
        ValueError: names the clashing fields and the two fixes.

    Example:
        >>> check_stored_fields(["year", "topic"], "docs")
    """
    clashing = sorted(set(stored) & set(SCORE_KEYS))
    if clashing:
        raise ValueError(
            f"Index {index!r} stores fields {clashing} whose names the retriever uses for its "
            f"scores ({', '.join(SCORE_KEYS)}): leave them out with "
            "SearchConfig(source_includes=[...]), or rename them when indexing."
        )
