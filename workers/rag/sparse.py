"""BM25 sparse vectors computed in the process: a tokenizer, stable term indices, TF weights.

Documents get BM25's term-frequency part, queries get 1 per distinct term, and the Qdrant
collection's sparse vector applies IDF (`Modifier.IDF`), so a hit scores
Σ idf(term) · tf-part(term) — BM25 — on a server and in local mode alike, with no model
to download. Encoding runs at ~3.5 M characters/s (~4,000 chunks of 850 characters a second,
~18 µs a question) on one core.
"""

from __future__ import annotations

import re
import threading
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Protocol

# PyStemmer: Snowball's English stemmer compiled to C. The pure-Python snowballstemmer
# stems the same way but made whole-chunk encoding ~7x slower (550 against 3,700 chunks/s).
import Stemmer  # PyStemmer ships no type hints (mypy override in pyproject.toml)

K1 = 1.2  # BM25 term-frequency saturation
B = 0.75  # BM25 length normalisation
# avgdl, the mean chunk length in terms, is a fixed number rather than the collection's
# running mean: a stored vector then never depends on what else the collection holds, so
# upserts stay idempotent and nothing needs re-encoding as documents come and go. Chunks
# are length-bounded: text gives 0.10-0.12 terms per character (measured on data/corpus and
# Python's documentation), so a full 1,200-character chunk holds ~130 terms, and headings
# cut many chunks short; the means measured were 37 (data/corpus, short sections) and 88
# (Python docs). Half a full chunk, chunk_max_chars / 15, sits between them: avgdl from 40
# to 120 moved hybrid hit@5 by at most 0.03 on either set (BM25 alone: up to 0.06).
CHARS_PER_AVG_TERM = 15
AVGDL = 1200 / CHARS_PER_AVG_TERM  # for the default RAGQ_CHUNK_MAX_CHARS


def default_avgdl(chunk_max_chars: int) -> float:
    """The avgdl that goes with a chunk size: half a full chunk's terms."""
    return chunk_max_chars / CHARS_PER_AVG_TERM


SparseVector = tuple[list[int], list[float]]  # (indices, values), indices ascending

# A word, or an identifier made of words joined by `.`, `_`, `-`, `:`, `/` or `@`
# (`VLT-4031`, `relay.consumer.max_inflight`, `key_id`); a command-line flag keeps its
# leading dashes (`--canary`, `-v`), a number's minus sign is dropped.
_TOKEN = re.compile(r"(?:(?<![\w-])-{1,2}(?=[^\W\d_]))?[^\W_]+(?:[._\-:/@]+[^\W_]+)*")
_PART = re.compile(r"[^\W_]+")
# Scripts written without spaces: a run of them is indexed as overlapping character pairs.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]+")

# English function words (NLTK's list, plus the pieces contractions split into), compared
# with the lowercased word before stemming. Question words are in it on purpose: queries
# are questions, and "which"/"what" say nothing about where the answer is.
_STOPWORDS = """
    a about above after again against ain all am an and any are aren as at be because been
    before being below between both but by can couldn d did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how i if in into is isn it its itself just ll m ma me mightn more
    most mustn my myself needn no nor not now o of off on once only or other our ours
    ourselves out over own re s same shan she should shouldn so some such t than that the
    their theirs them themselves then there these they this those through to too under until
    up ve very was wasn we were weren what when where which while who whom why will with won
    wouldn y you your yours yourself yourselves would could shall might must may also
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS.split())

_local = threading.local()  # a PyStemmer object must not be shared between threads


class _Stemmer(Protocol):
    def stemWord(self, word: str) -> str: ...  # PyStemmer's name


def tokenize(text: str) -> list[str]:
    """The text's terms in order: lowercased, stemmed words without stopwords; an identifier
    gives its whole (unstemmed) form followed by its parts (`VLT-4031` → `vlt-4031`, `vlt`,
    `4031`; `VaultSealed` → `vaultsealed`, `vault`, `seal`)."""
    return list(_terms(unicodedata.normalize("NFKC", text)))


def term_index(term: str) -> int:
    """The sparse-vector index of a term: CRC-32 of its UTF-8 bytes (unsigned, 32 bits), the
    same in every process, on every platform and Python version."""
    return zlib.crc32(term.encode("utf-8"))


def encode_document(
    text: str, *, k1: float = K1, b: float = B, avgdl: float = AVGDL
) -> SparseVector:
    """BM25's term-frequency part per term, tf·(k1+1) / (tf + k1·(1 - b + b·dl/avgdl)), where
    dl counts the text's terms; Qdrant multiplies in each term's IDF at query time."""
    if k1 < 0 or not 0 <= b <= 1 or avgdl <= 0:
        raise ValueError(f"BM25 needs k1 >= 0, 0 <= b <= 1 and avgdl > 0, not {k1=} {b=} {avgdl=}")
    terms = tokenize(text)
    counts = Counter(term_index(t) for t in terms)
    norm = k1 * (1 - b + b * len(terms) / avgdl)
    indices = sorted(counts)
    return indices, [counts[i] * (k1 + 1) / (counts[i] + norm) for i in indices]


def encode_query(text: str) -> SparseVector:
    """Weight 1 for every distinct term of the question (empty when it has none)."""
    indices = sorted({term_index(t) for t in tokenize(text)})
    return indices, [1.0] * len(indices)


def _terms(text: str) -> Iterator[str]:
    stem = _stemmer().stemWord
    for match in _TOKEN.finditer(text):
        token = match.group()
        parts = [piece for part in _PART.findall(token) for piece in _split_case(part)]
        if len(parts) > 1 or token[0] == "-":
            yield token.casefold()
        for part in parts:
            word = part.casefold()
            if _UNSPACED.search(word):
                yield from _pieces(word)
            elif word not in STOPWORDS:
                yield stem(word)


def _split_case(part: str) -> list[str]:
    """`VaultSealed` → `Vault`, `Sealed`; `JWKSCache` → `JWKS`, `Cache`; others unchanged."""
    if part.islower() or part.isupper() or part.istitle():
        return [part]
    pieces: list[str] = []
    start = 0
    for i in range(1, len(part)):
        prev, cur, after = part[i - 1], part[i], part[i + 1 : i + 2]
        if cur.isupper() and (prev.islower() or (prev.isupper() and after.islower())):
            pieces.append(part[start:i])
            start = i
    pieces.append(part[start:])
    return pieces


def _pieces(word: str) -> Iterator[str]:
    """Text in scripts without spaces, as overlapping character pairs (single characters
    alone); letters of other scripts around it stay words."""
    last = 0
    for run in _UNSPACED.finditer(word):
        if run.start() > last:
            yield word[last : run.start()]
        chars = run.group()
        if len(chars) == 1:
            yield chars
        else:
            yield from (chars[i : i + 2] for i in range(len(chars) - 1))
        last = run.end()
    if last < len(word):
        yield word[last:]


def _stemmer() -> _Stemmer:
    stemmer: _Stemmer | None = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer
