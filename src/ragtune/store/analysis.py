"""Lexical analysis for BM25: words, stopwords and stemming, chosen by name.

The store hashes each chunk's analysed terms at ingest (store/sqlite.py), so the analysis
is part of the store's state: its :attr:`Analyzer.key` is recorded in the store, and a
store opened with another analysis re-analyses its chunks from their stored text.

Stemmers: ``snowball`` (the Snowball English stemmer, through PyStemmer — the stemmer
bm25s uses), ``light`` (plural, -ing and -ed endings only; ragtune's first analysis) and
``none``. Stopword lists: ``english`` (the usual English list, as in bm25s and Lucene),
``short`` (the 58 commonest function words) and ``none``.

>>> Analyzer("snowball", "english").analyze("What is the Return window for tents?")
['return', 'window', 'tent']
>>> Analyzer("light", "short").analyze("Policies about shipping")
['policy', 'about', 'shipp']
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ragtune.errors import ConfigError, StoreError

STEMMERS = ("snowball", "light", "none")
STOPWORD_LISTS = ("english", "short", "none")

# Words of two or more characters, and single digits ("form 7"); single letters are
# noise for ranking (+0.004 average nDCG@10 on bench/retrieval_sets.py's public sets).
_TOKEN = re.compile(r"\w\w+|\d", re.UNICODE)

SHORT_STOPWORDS = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for",
     "from", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my",
     "of", "on", "or", "our", "so", "than", "that", "the", "their", "them", "then",
     "there", "these", "they", "this", "to", "was", "we", "what", "when", "where",
     "which", "who", "why", "will", "with", "you", "your"]
)

# The English stop list of Lucene's and NLTK's kind, plus the pieces \w+ leaves of
# contractions ("don't" -> "don", "t").
ENGLISH_STOPWORDS = SHORT_STOPWORDS | frozenset(
    ["about", "above", "after", "again", "against", "all", "am", "any", "aren", "been",
     "before", "being", "below", "between", "both", "couldn", "could", "d", "did", "didn",
     "doesn", "doing", "don", "down", "during", "each", "few", "further", "had", "hadn",
     "hasn", "haven", "having", "he", "her", "here", "hers", "herself", "him", "himself",
     "his", "isn", "just", "ll", "m", "ma", "mightn", "more", "most", "mustn", "myself",
     "needn", "no", "nor", "not", "now", "o", "off", "once", "only", "other", "ours",
     "ourselves", "out", "over", "own", "re", "s", "same", "shan", "she", "should",
     "shouldn", "some", "such", "t", "theirs", "themselves", "those", "through", "too",
     "under", "until", "up", "us", "ve", "very", "wasn", "were", "weren", "while", "whom",
     "won", "wouldn", "y", "yours", "yourself", "yourselves", "also", "would"]
)

_STOPWORDS = {"english": ENGLISH_STOPWORDS, "short": SHORT_STOPWORDS, "none": frozenset()}


def light_stem(word: str) -> str:
    """A light, predictable stemmer: plural and -ing/-ed endings.

    >>> [light_stem(w) for w in ["policies", "returns", "glass", "shipping", "returned", "days"]]
    ['policy', 'return', 'glass', 'shipp', 'return', 'day']
    """
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=1)
def _snowball():
    try:
        import Stemmer
    except ImportError:
        raise ConfigError(
            "store.bm25_stemmer = 'snowball' needs the PyStemmer package (a ragtune "
            "dependency): pip install PyStemmer, or set store.bm25_stemmer = 'light'"
        ) from None
    return Stemmer.Stemmer("english")


@dataclass(frozen=True)
class Analyzer:
    """Lowercased words (2+ characters, or a digit), minus a stopword list, stemmed.

    Equal analyzers give equal :attr:`key`; a store records the key of the analysis its
    term hashes were made with.
    """

    stemmer: str = "snowball"
    stopwords: str = "english"
    _cache: dict[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)

    VERSION = 2  # bump when the tokenisation itself changes (2: no single letters)

    def __post_init__(self) -> None:
        if self.stemmer not in STEMMERS:
            raise ConfigError(f"store.bm25_stemmer must be one of {', '.join(STEMMERS)}, "
                              f"got {self.stemmer!r}")
        if self.stopwords not in STOPWORD_LISTS:
            raise ConfigError(f"store.bm25_stopwords must be one of "
                              f"{', '.join(STOPWORD_LISTS)}, got {self.stopwords!r}")

    @property
    def key(self) -> str:
        return f"{self.stemmer}/{self.stopwords}/v{self.VERSION}"

    @classmethod
    def from_key(cls, key: str) -> Analyzer:
        stemmer, stopwords, _ = key.split("/")
        return cls(stemmer, stopwords)

    def words(self, text: str) -> list[str]:
        stop = _STOPWORDS[self.stopwords]
        return [w for w in _TOKEN.findall(text.lower()) if w not in stop]

    def analyze(self, text: str) -> list[str]:
        """The terms of ``text``, in order."""
        words = self.words(text)
        if self.stemmer == "none":
            return words
        if self.stemmer == "light":
            return [light_stem(w) for w in words]
        # PyStemmer is fast, but a per-analyzer cache of seen words is faster still:
        # a corpus repeats a small vocabulary.
        cache = self._cache
        missing = [w for w in set(words) if w not in cache]
        if missing:
            if len(cache) > 500_000:
                cache.clear()
            cache.update(zip(missing, _snowball().stemWords(missing)))
        return [cache[w] for w in words]

    def term_hashes(self, text: str) -> np.ndarray:
        """The terms of ``text`` as uint32 hashes (crc32 of the term), in order.

        Stored per chunk at ingest, so building the index never tokenises again.

        >>> a = Analyzer("light", "short")
        >>> a.term_hashes("tents").tolist() == a.term_hashes("Tent").tolist()
        True
        """
        return np.fromiter((zlib.crc32(t.encode("utf-8")) for t in self.analyze(text)),
                           dtype=np.uint32)


def check_analysis(stored: str | None, analyzer: Analyzer, where: str) -> None:
    """Refuse to search or write a store whose stored terms were made with another analysis
    (another process, with other ``[store] bm25_*`` settings, re-analysed it): its terms
    and this process's would not match, and results would be silently wrong.

    >>> check_analysis("light/short/v2", Analyzer("light", "short"), "store.db")
    """
    if stored != analyzer.key:
        raise StoreError(
            f"{where}: the store's BM25 terms were made with the analysis {stored!r}, and "
            f"this process analyses text as {analyzer.key!r} ([store] bm25_stemmer, "
            "bm25_stopwords): another process re-analysed the store with other settings; "
            "give every process the same [store] settings and reopen")


_QUOTED = re.compile(r'"([^"]+)"')


def quoted_phrases(query: str) -> list[list[str]]:
    """The words of each quoted phrase in ``query`` (phrases without a word dropped); every
    store matches them in order, separated by non-word characters, ignoring case.

    >>> quoted_phrases('error "E-4012" on the "VPN client" "-"')
    [['E', '4012'], ['VPN', 'client']]
    """
    return [words for words in (re.findall(r"\w+", p) for p in _QUOTED.findall(query)) if words]


# What stores made before analysis became configurable were hashed with.
LEGACY = Analyzer("light", "short")  # with today's tokenisation; its stores say v1
