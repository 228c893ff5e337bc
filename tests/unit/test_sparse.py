"""BM25 sparse vectors: what the tokenizer keeps, stable term indices, and BM25 weights."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from workers.rag.sparse import (
    AVGDL,
    STOPWORDS,
    default_avgdl,
    encode_document,
    encode_query,
    term_index,
    tokenize,
)


def _weights(text: str, **bm25: float) -> dict[int, float]:
    indices, values = encode_document(text, **bm25)
    return dict(zip(indices, values, strict=True))


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("fails with VLT-4031.", ["fail", "vlt-4031", "vlt", "4031"]),
        (
            "relay.consumer.max_inflight",
            ["relay.consumer.max_inflight", "relay", "consum", "max", "inflight"],
        ),
        ("atlas deploy --canary 10", ["atlas", "deploy", "--canary", "canari", "10"]),
        ("run it with -v", ["run", "-v", "v"]),
        ("key_id", ["key_id", "key", "id"]),
        ("vault:keys:rotate", ["vault:keys:rotate", "vault", "key", "rotat"]),
    ],
)
def test_identifiers_are_indexed_whole_and_by_their_parts(text: str, terms: list[str]) -> None:
    """An error code, a config key or a flag matches exactly, and its words match alone."""
    assert tokenize(text) == terms


def test_camel_case_names_are_split_into_words() -> None:
    """`VaultSealed` is found by "sealed vault" as well as by its whole name."""
    assert tokenize("VaultSealed JWKSCache") == [
        "vaultsealed",
        "vault",
        "seal",
        "jwkscache",
        "jwks",
        "cach",
    ]


def test_a_sentence_end_or_a_minus_sign_is_not_part_of_a_term() -> None:
    """Punctuation around a term does not change it."""
    assert tokenize("VLT-4031. (VLT-4031)? -5 degrees") == tokenize("VLT-4031 VLT-4031 5 degrees")


def test_stemming_merges_inflections() -> None:
    """ "rotating keys" and "rotated key" are the same query."""
    assert encode_query("rotating keys") == encode_query("rotated key")
    assert tokenize("rotation rotations rotate") == ["rotat"] * 3


def test_stopwords_and_question_words_are_dropped() -> None:
    """Function words say nothing about where the answer is."""
    assert tokenize("What is the default of it, and which one does it use?") == [
        "default",
        "one",
        "use",
    ]
    assert encode_query("what is it?") == ([], [])
    assert {"the", "which", "what", "don", "t"} <= STOPWORDS


def test_a_stopword_inside_an_identifier_keeps_the_identifier() -> None:
    """`on-call` stays searchable though "on" alone is a stopword."""
    assert tokenize("the on-call rotation") == ["on-call", "call", "rotat"]


def test_text_is_lowercased_and_unicode_normalised() -> None:
    """Case, full-width forms and accents written either way match the same terms."""
    assert tokenize("ＶＬＴ－４０３１") == tokenize("vlt-4031")
    assert tokenize("Café NAÏVE") == tokenize("cafe\u0301 naïve")
    assert tokenize("Straße") == tokenize("STRASSE")


def test_text_without_spaces_is_indexed_by_character_pairs() -> None:
    """Japanese or Chinese text is searchable although it has no spaces between words."""
    assert tokenize("日本語テキスト") == ["日本", "本語", "語テ", "テキ", "キス", "スト"]
    assert tokenize("日") == ["日"]


def test_term_indices_are_the_same_in_every_process() -> None:
    """Stored vectors stay valid across restarts, hosts and Python versions (no `hash()`)."""
    assert term_index("vlt-4031") == 343812833
    assert term_index("rotat") == 1577290920
    assert term_index("café") == 2561491637
    assert all(0 <= term_index(t) < 2**32 for t in ["", "x", "日本"])


def test_query_values_are_one_per_distinct_term() -> None:
    """A question's repeated words count once; Qdrant's IDF does the weighting."""
    indices, values = encode_query("key key rotation of the key")
    assert indices == sorted({term_index("key"), term_index("rotat")})
    assert values == [1.0, 1.0]


def test_document_vectors_have_sorted_unique_indices() -> None:
    """Every term appears once in a document's vector, with a positive weight."""
    indices, values = encode_document("key rotation: rotate the key, then check the keys")
    assert indices == sorted(set(indices))
    assert len(indices) == len(values) == 3
    assert all(v > 0 for v in values)
    assert encode_document("") == ([], [])


def test_bm25_weight_rises_with_term_frequency_and_saturates() -> None:
    """A term said more often weighs more, but never more than k1 + 1."""
    key = term_index("key")
    filler = " alpha beta gamma delta"
    weights = [_weights("key " * tf + filler)[key] for tf in (1, 2, 4, 50)]
    assert weights == sorted(weights)
    assert len(set(weights)) == 4
    assert weights[-1] < 1.2 + 1


def test_bm25_weight_falls_with_document_length() -> None:
    """The same term counts less in a longer chunk, and length is ignored when b = 0."""
    key = term_index("key")
    short = _weights("key alpha")[key]
    long = _weights("key alpha " + "beta " * 200)[key]
    assert long < short
    assert _weights("key alpha", b=0)[key] == _weights("key alpha " + "beta " * 200, b=0)[key]


def test_bm25_weight_matches_the_formula() -> None:
    """tf·(k1+1) / (tf + k1·(1 - b + b·dl/avgdl)) with dl counting the chunk's terms."""
    weights = _weights("key key alpha beta", k1=1.5, b=0.5, avgdl=8)
    assert weights[term_index("key")] == pytest.approx(2 * 2.5 / (2 + 1.5 * (0.5 + 0.5 * 4 / 8)))


def test_bm25_parameters_are_validated() -> None:
    """Nonsense parameters fail loudly instead of producing odd weights."""
    for bad in ({"k1": -1.0}, {"b": 1.5}, {"avgdl": 0.0}):
        with pytest.raises(ValueError, match="BM25"):
            encode_document("key", **bad)


def test_default_avgdl_follows_the_chunk_size() -> None:
    """Bigger chunks get a bigger average length, and the default matches 1,200 characters."""
    assert default_avgdl(1200) == AVGDL == 80
    assert default_avgdl(2400) == 2 * AVGDL


def test_encoding_gives_the_same_vectors_on_every_thread() -> None:
    """Ingest and search may encode on different threads: the stemmer is per thread."""
    texts = [f"rotating key {i} of relay.consumer.max_inflight" for i in range(200)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(encode_document, texts))
    assert threaded == [encode_document(t) for t in texts]
