"""Whether a query says anything: content words against English function words. Pure.

SPLADE expands every query, so one made only of stopwords or punctuation ("the of", "?!")
still gets confident hits through its expansion terms. Searchers warn about such queries.
"""

from __future__ import annotations

import re

__all__ = ["STOPWORDS", "content_words"]

# English function words that never carry a query alone: articles, pronouns, auxiliaries,
# prepositions, conjunctions. Words that can (IT, WHO, up, not, how...) are left out.
_FUNCTION_WORDS = (
    "a about am an and are as at be been being but by could did do does doing for from had "
    "has have having he her hers herself him himself his i if in into is its itself me my "
    "myself nor of on or our ours ourselves she should so than that the their theirs them "
    "themselves then these they this those to too was we were with would you your yours "
    "yourself yourselves"
)
STOPWORDS = frozenset(_FUNCTION_WORDS.split())
_WORD = re.compile(r"\w+")


def content_words(text: str) -> list[str]:
    """The words of ``text`` that are not English function words, lowercased, in order.

    Example:
        >>> content_words("Does aspirin prevent heart attacks?")
        ['aspirin', 'prevent', 'heart', 'attacks']
        >>> content_words("of the and")
        []
    """
    return [word for word in _WORD.findall(text.lower()) if word not in STOPWORDS]
