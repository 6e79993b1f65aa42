"""The corpus-trained WordPiece tokeniser: fixed length, cached, vocabulary size honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradleak.data.text_corpus import load_lee
from gradleak.data.text_tokenizer import CLS_ID, PAD_ID, SEP_ID, UNK_ID, corpus_tokenizer
from gradleak.errors import DataError

pytest.importorskip("tokenizers")


def test_lee_tokeniser_round_trip_and_cache(text_cache: Path, tmp_path: Path) -> None:
    data = load_lee(text_cache)
    tok = corpus_tokenizer(data.sentences, "lee", tmp_path, vocab_size=1500, seq_len=24)
    assert 1000 < tok.vocab_size <= 1500
    ids = tok.encode(data.sentences[:8])
    assert ids.shape == (8, 24)
    assert (ids[:, 0] == CLS_ID).all()
    # Long sentences are truncated to end in [SEP]; short ones are [SEP] then padding.
    for row in ids.tolist():
        body = row[: row.index(SEP_ID) + 1]
        assert all(i == PAD_ID for i in row[len(body) :])
    # Words seen in training come back (lower-cased), and few pieces are unknown.
    short = "The national executive of the Democrats met last night."
    back = tok.decode(tok.encode([short]))[0]
    assert back == short.lower()
    assert (ids == UNK_ID).float().mean() < 0.02
    saved = list((tmp_path / "tokenizers").glob("lee-wordcount-1500-*.json"))
    assert len(saved) == 1
    again = corpus_tokenizer(data.sentences, "lee", tmp_path, vocab_size=1500, seq_len=24)
    assert again.encode(data.sentences[:8]).equal(ids)


def test_bad_options_and_damaged_cache(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="vocab_size"):
        corpus_tokenizer(["a b c"], "x", tmp_path, vocab_size=3)
    tok = corpus_tokenizer(["a b c"], "x", tmp_path, vocab_size=50)
    (saved,) = (tmp_path / "tokenizers").glob("*.json")
    saved.write_text("{not json")
    with pytest.raises(DataError, match="damaged"):
        corpus_tokenizer(["a b c"], "x", tmp_path, vocab_size=50)
    tok.seq_len = 1
    with pytest.raises(DataError, match="seq_len"):
        tok.encode(["a"])


def test_vocabulary_is_the_same_on_every_training(text_cache: Path) -> None:
    """The library's own trainer gave three vocabularies in three trainings; ours must not."""
    from gradleak.data.text_tokenizer import SPECIAL_TOKENS, train_tokenizer

    sentences = load_lee(text_cache).sentences
    first, second = (train_tokenizer(sentences, 1500).get_vocab() for _ in range(2))
    assert first == second and len(first) == 1500
    assert [first[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    by_id = sorted(first, key=first.__getitem__)
    words = [w for w in by_id if len(w) > 1 and not w.startswith("##") and w not in SPECIAL_TOKENS]
    assert words[:3] == ["the", "to", "of"]  # whole words follow by falling count
