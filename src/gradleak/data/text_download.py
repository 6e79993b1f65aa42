"""Standard text corpora for users with a network: fetched once, checksum-verified, cached.

Nothing here runs unless the user names such a corpus *and* sets ``data.download=true``; the
bundled corpora (``text_corpus.TEXT_DATASETS``) need no network. The archive goes through
``data.download`` (written under a temporary name, moved into place only when its SHA-256
matches), so a tampered or broken download is never read.

``wikitext2``: WikiText-2 (Merity et al. 2016, CC BY-SA), the raw-token v1 archive from its
original home. Its SHA-256 is the one the Julia DataDeps registry publishes for that URL
(``92675f1d…488c``); MXNet's gluon-nlp pins the same archive by SHA-1 (``3c914d17…``).
It was not downloaded here (no network): the first user with one verifies it.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from gradleak.data.download import Resource, download, missing_files_error
from gradleak.data.text_corpus import MAX_TEXT_BYTES, TextDataset, split_sentences
from gradleak.errors import DataError
from gradleak.registry import Registry

WIKITEXT2 = Resource(
    "wikitext-2-v1.zip",
    ("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",),
    "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c",
    "sha256",
)
WIKITEXT2_MEMBER = "wikitext-2/wiki.test.tokens"
"""The test split (~4 300 lines): enough sentences to attack, small to tokenise."""

_ESCAPES = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
_HEADING = re.compile(r"^\s*=.*=\s*$")

DownloadableReader = Callable[[Path, bool], TextDataset]
"""(cache folder, download allowed) -> data set. Raises DataError when it cannot be had."""

DOWNLOADABLE_TEXT: Registry[DownloadableReader] = Registry("downloadable text data set")


def wikitext_sentences(text: str) -> list[str]:
    """Sentences of WikiText's tokenised prose: headings and blank lines dropped, its
    ``@-@``-style escapes undone, sentences of fewer than 5 words dropped."""
    out = []
    for raw in text.splitlines():
        if not raw.strip() or _HEADING.match(raw):
            continue
        line = raw.strip()
        for escaped, plain in _ESCAPES:
            line = line.replace(escaped, plain)
        line = line.replace(" .", ".").replace(" ,", ",")
        out += [s for s in split_sentences(line) if len(s.split()) >= 5]
    return out


@DOWNLOADABLE_TEXT.register("wikitext2")
def load_wikitext2(cache: Path, allow_download: bool) -> TextDataset:
    """WikiText-2's test split as sentences; one class (use ``data.labels=client``)."""
    archive = cache / WIKITEXT2.filename
    if not archive.is_file():
        if not allow_download:
            raise missing_files_error("WikiText-2", cache, [WIKITEXT2.filename], WIKITEXT2.urls[0])
        archive = download(WIKITEXT2, cache)
    try:
        with zipfile.ZipFile(archive) as zipped:
            info = zipped.getinfo(WIKITEXT2_MEMBER)
            if info.file_size > MAX_TEXT_BYTES:
                raise DataError(f"{WIKITEXT2_MEMBER} in {archive} is over {MAX_TEXT_BYTES} bytes")
            text = zipped.read(info).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {WIKITEXT2_MEMBER} from {archive}: {exc}") from None
    sentences = wikitext_sentences(text)
    if not sentences:
        raise DataError(f"{archive} holds no sentences in {WIKITEXT2_MEMBER}")
    return TextDataset("wikitext2", sentences, torch.zeros(len(sentences), dtype=torch.long), 1)
