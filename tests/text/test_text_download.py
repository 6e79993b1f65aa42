"""The downloadable corpus: refused offline in one line, a tampered archive never read."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from gradleak.config import DataConfig
from gradleak.data import load_dataset, text_download
from gradleak.errors import DataError

WIKITEXT_LINES = """
 = Valkyria Chronicles III =

 Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing video game . It was
 released in January 2011 in Japan , and is the third game in the series .
 = = Gameplay = =
 The game 's battle system , the BliTZ system , is carried over directly from the first game .
"""


def fake_archive(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "source.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(text_download.WIKITEXT2_MEMBER, WIKITEXT_LINES)
    return path


def test_offline_without_download_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.download=true"):
        load_dataset(DataConfig(name="wikitext2", root=tmp_path), seed=0)


def test_a_tampered_download_is_refused_and_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = fake_archive(tmp_path / "mirror")
    monkeypatch.setattr(
        text_download, "WIKITEXT2", replace(text_download.WIKITEXT2, urls=(source.as_uri(),))
    )
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="sha256"):
        load_dataset(DataConfig(name="wikitext2", root=cache, download=True), seed=0)
    assert not (cache / text_download.WIKITEXT2.filename).exists()


def test_a_verified_download_is_read_as_sentences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = fake_archive(tmp_path / "mirror")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    pinned = replace(text_download.WIKITEXT2, urls=(source.as_uri(),), digest=digest)
    monkeypatch.setattr(text_download, "WIKITEXT2", pinned)
    cfg = DataConfig(name="wikitext2", root=tmp_path / "cache", download=True, seq_len=24)
    data = load_dataset(cfg, seed=0)
    sentences = data.tokenizer.decode(data.images)
    assert len(sentences) == 3  # headings dropped, one sentence per full stop
    assert sentences[0].startswith("senjo no valkyria 3")  # accents stripped by the normaliser
    assert "role - playing" in sentences[0]  # "@-@" undone (WordPiece splits on punctuation)
