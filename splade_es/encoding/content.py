"""Whether a query says anything: content words against English function words. Pure.

SPLADE expands every query, so one made only of stopwords or punctuation ("the of", "?!")
still gets confident hits through its expansion terms. Searchers warn about such queries.
"""

from __future__ import annotations

import re

__all__ = ["STOPWORDS", "content_words"]

# English function words: articles, pronouns, auxiliaries, prepositions, conjunctions.
_FUNCTION_WORDS = (
    "a about above after again against all am an and any are as at be because been before "
    "being below between both but by can could did do does doing down during each few for "
    "from further had has have having he her here hers herself him himself his how i if in "
    "into is it its itself just me more most my myself no nor not now of off on once only or "
    "other our ours ourselves out over own same she should so some such than that the their "
    "theirs them themselves then there these they this those through to too under until up "
    "very was we were what when where which while who whom why will with would you your yours "
    "yourself yourselves"
)
STOPWORDS = frozenset(_FUNCTION_WORDS.split())
_WORD = re.compile(r"\w+")


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not English function words, lowercased, in order.

    Example:
        >>> content_words("Does aspirin prevent heart attacks?")
        ['aspirin', 'prevent', 'heart', 'attacks']
        >>> content_words("to be or not to be")
        []
    """
    return [word for word in _WORD.findall(text.lower()) if word not in STOPWORDS]
