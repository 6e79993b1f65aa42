"""Text data sets, offline: corpora that ship inside the pinned gensim wheel, or the user's file.

No text corpus can be downloaded at run time, but the ``gensim`` 4.4.0 wheel carries small
real corpora among its test data (verified in the wheel):

- ``gensim/test/test_data/lee_background.cor`` (300 ABC news articles) and
  ``gensim/test/test_data/lee.cor`` (50 more): the Lee corpus, one article a line;
- ``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``:
  206 Wikipedia pages as MediaWiki XML (the markup is stripped crudely, see :func:`load_wiki`);
- ``gensim/test/test_data/pang_lee_polarity.cor``: 200 Rotten Tomatoes sentences (Pang & Lee
  polarity), ``__label__neg`` / ``__label__pos`` then the lower-cased, tokenised sentence.

The wheel is fetched through pip by its pinned SHA-256 (:mod:`gradleak.data.pip_fetch`) and is
only read as a zip: gensim is never installed or imported. The files read are copied into a
cache folder, so later loads need no network.

Every file, from the wheel or the user, goes through :func:`read_text_file`, which refuses an
oversized, empty or non-UTF-8 file with one :class:`~gradleak.errors.DataError` line.
"""

from __future__ import annotations

import bz2
import hashlib
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import torch

from gradleak.data.pip_fetch import pip_download_wheel
from gradleak.errors import DataError
from gradleak.registry import Registry

MAX_TEXT_BYTES = 64 << 20
"""Largest text file read (64 MiB): far above any corpus here, far below what exhausts memory."""

GENSIM_VERSION = "4.4.0"
GENSIM_WHEEL = "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
GENSIM_WHEEL_SHA256 = "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8"
"""SHA-256 of the wheel above, as pip downloaded it from PyPI on 2026-12-02."""
_TEST_DATA = "gensim/test/test_data/"
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
"""A MediaWiki XML export of 206 English Wikipedia pages (bz2, UTF-8), in the same wheel."""
GENSIM_ENCODING = "cp1252"
"""The wheel's corpora are Windows-1252, not UTF-8 (checked: lee.cor has byte 0xA3 in "£3,000",
pang_lee_polarity.cor 0x97 for an em dash and 0xE9 in "clichés"); decoded as such."""
GENSIM_MEMBERS = {
    "lee_background.cor": _TEST_DATA + "lee_background.cor",
    "lee.cor": _TEST_DATA + "lee.cor",
    "pang_lee_polarity.cor": _TEST_DATA + "pang_lee_polarity.cor",
    WIKI_FILE: _TEST_DATA + WIKI_FILE,
}


@dataclass(frozen=True)
class TextDataset:
    """Sentences with integer labels (N,): the text counterpart of ``ImageDataset``.

    Kept as strings, not token ids, so the tokeniser (trained on the corpus, vocabulary size
    an option) and the fixed sequence length stay separate choices.
    """

    name: str
    sentences: list[str]
    labels: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.labels.shape != (len(self.sentences),):
            raise ValueError("labels must have one entry per sentence")
        if self.labels.numel() and int(self.labels.max()) >= self.num_classes:
            raise ValueError("a label is not below num_classes")

    def __len__(self) -> int:
        return len(self.sentences)

    def subset(self, indices: torch.Tensor | list[int]) -> TextDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        sentences = [self.sentences[int(i)] for i in idx]
        return TextDataset(
            self.name, sentences, self.labels[idx], self.num_classes, self.class_names
        )


TextReader = Callable[[Path], TextDataset]
"""(cache or data folder) -> data set. Raises DataError when it cannot be had."""

TEXT_DATASETS: Registry[TextReader] = Registry("text data set")


def read_text_file(path: Path, max_bytes: int = MAX_TEXT_BYTES, encoding: str = "utf-8") -> str:
    """The file's text, or one DataError line saying why it cannot be used.

    User files must be UTF-8 (strict: a wrong guess would silently garble the ground truth
    that reconstructions are scored against); only the bundled corpora name another encoding.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"text file {path} cannot be read: {exc.strerror or exc}") from None
    if not path.is_file():
        raise DataError(f"text file {path} is not a regular file")
    if size > max_bytes:
        raise DataError(f"text file {path} is {size} bytes, over the {max_bytes}-byte limit")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"text file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"text file {path} is not {encoding.upper()} (bad byte at offset {exc.start})"
        ) from None
    if "\x00" in text:
        raise DataError(f"text file {path} holds NUL bytes: not a text file")
    if not text.strip():
        raise DataError(f"text file {path} is empty")
    return text.removeprefix("\ufeff")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gensim_wheel(cache: Path) -> Path:
    """The pinned gensim wheel in ``cache`` (hash checked), fetched through pip if absent."""
    wheel = cache / "wheel" / "out" / GENSIM_WHEEL
    if wheel.is_file() and _sha256(wheel) == GENSIM_WHEEL_SHA256:
        return wheel
    got = pip_download_wheel(
        "gensim",
        GENSIM_VERSION,
        GENSIM_WHEEL_SHA256,
        cache / "wheel",
        platform="manylinux_2_28_x86_64",
        python_version="3.11",
        abi="cp311",
    )
    if got.name != GENSIM_WHEEL:
        raise DataError(f"pip fetched {got.name}, not the pinned {GENSIM_WHEEL}")
    return got


def gensim_file(name: str, cache: Path) -> Path:
    """One corpus file from the gensim wheel, copied into ``cache/gensim-4.4.0/`` once.

    Written under a temporary name and moved into place, so an interrupted copy never leaves
    a partial file that a later load would trust.
    """
    member = GENSIM_MEMBERS[name]
    target = cache / f"gensim-{GENSIM_VERSION}" / name
    if target.is_file():
        return target
    wheel = gensim_wheel(cache)
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            if info.file_size > MAX_TEXT_BYTES:
                raise DataError(f"{member} in {wheel.name} is over {MAX_TEXT_BYTES} bytes")
            data = archive.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(f"cannot read {member} from {wheel}: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, target)
    return target


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


def split_sentences(article: str) -> list[str]:
    """Cut running text after ``.``, ``!`` or ``?`` followed by a capital, digit or quote.

    Crude (an abbreviation such as "Mr. Smith" splits), but it needs no model or download and
    the attacks only need sentence-sized pieces of real text.
    """
    return [part.strip() for part in _SENTENCE_END.split(article) if part.strip()]


@TEXT_DATASETS.register("lee")
def load_lee(cache: Path) -> TextDataset:
    """The Lee corpus cut into sentences; the label says which file a sentence came from.

    The corpus has no class labels, so the label is its source (0: the 300 background
    articles, 1: the 50 test articles): a real two-class target for a classifier to take a
    gradient on, not a topic.
    """
    sentences: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(("lee_background.cor", "lee.cor")):
        for article in _lines(read_text_file(gensim_file(name, cache), encoding=GENSIM_ENCODING)):
            parts = split_sentences(article)
            sentences += parts
            labels += [label] * len(parts)
    return TextDataset("lee", sentences, torch.tensor(labels), 2, ["background", "test"])


@TEXT_DATASETS.register("movie_reviews")
def load_movie_reviews(cache: Path) -> TextDataset:
    """The 200 Rotten Tomatoes polarity sentences: label 0 negative, 1 positive."""
    path = gensim_file("pang_lee_polarity.cor", cache)
    return parse_labelled_lines(
        read_text_file(path, encoding=GENSIM_ENCODING), "movie_reviews", ["neg", "pos"], path
    )


def parse_labelled_lines(text: str, name: str, classes: list[str], source: Path) -> TextDataset:
    """Lines of ``__label__CLASS sentence`` (the fastText format) as a data set."""
    sentences: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(_lines(text), start=1):
        tag, _, sentence = line.partition(" ")
        cls = tag.removeprefix("__label__")
        if not tag.startswith("__label__") or cls not in classes or not sentence.strip():
            raise DataError(
                f"{source} line {number} is not '__label__<{'|'.join(classes)}> sentence'"
            )
        sentences.append(sentence.strip())
        labels.append(classes.index(cls))
    return TextDataset(name, sentences, torch.tensor(labels), len(classes), list(classes))


def load_text_path(path: Path, max_bytes: int = MAX_TEXT_BYTES) -> TextDataset:
    """A user's text: a file of one sentence a line, or a folder of ``*.txt`` files.

    A folder's files are its classes (sorted names, label = position), as an image folder's
    sub-folders are; a single file is one class. (A one-class classifier's loss has no
    gradient, so attack a single file with a language model or give a folder.)
    """
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix == ".txt" and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"text folder {path} holds no .txt files")
    elif path.exists():
        files = [path]
    else:
        raise DataError(f"text path {path} does not exist")
    sentences: list[str] = []
    labels: list[int] = []
    for label, file in enumerate(files):
        lines = _lines(read_text_file(file, max_bytes))
        sentences += lines
        labels += [label] * len(lines)
    return TextDataset(
        path.stem, sentences, torch.tensor(labels), len(files), [f.stem for f in files]
    )


def load_text_dataset(name: str, cache: Path) -> TextDataset:
    """A registered corpus by name, or any other name read as a path to the user's text."""
    if name in TEXT_DATASETS:
        return TEXT_DATASETS.get(name)(cache)
    return load_text_path(Path(name))


_MARKUP = [
    (re.compile(r"<!--.*?-->", re.S), " "),
    (re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S), " "),
    (re.compile(r"<[^>]+>"), " "),
    (re.compile(r"\{\|.*?\|\}", re.S), " "),  # tables
    (re.compile(r"\[\[(?:[^\]|]*\|)?([^\]|]*)\]\]"), r"\1"),  # [[target|text]] -> text
    (re.compile(r"\[https?://\S+\s*([^\]]*)\]"), r"\1"),  # [url text] -> text
    (re.compile(r"'{2,}"), ""),
    (re.compile(r"&nbsp;"), " "),
]
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_PLAIN = re.compile(r"^[A-Za-z0-9 ,.;:'\"()\-]+$")


def wiki_sentences(wikitext: str) -> list[str]:
    """Plain sentences of one page's wikitext: templates, tables, refs and link targets gone.

    Crude on purpose (no parser dependency): only prose lines are kept, and only sentences of
    5 or more words made of plain characters, so leftover markup is dropped rather than scored.
    """
    text = wikitext
    for _ in range(5):  # nested templates, innermost first
        text = _TEMPLATE.sub(" ", text)
    for pattern, repl in _MARKUP:
        text = pattern.sub(repl, text)
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "=*#:;|!{}[" or line.lower().startswith(("file:", "image:")):
            continue
        for sentence in split_sentences(" ".join(line.split())):
            if len(sentence.split()) >= 5 and _PLAIN.match(sentence):
                out.append(sentence)
    return out


@TEXT_DATASETS.register("wiki_sample")
def load_wiki(cache: Path) -> TextDataset:
    """Prose sentences of the 206-page Wikipedia sample; one class (the pages carry no labels)."""
    path = gensim_file(WIKI_FILE, cache)
    decompressor = bz2.BZ2Decompressor()
    try:
        xml = decompressor.decompress(path.read_bytes(), max_length=MAX_TEXT_BYTES)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable bz2 file: {exc}") from None
    if not decompressor.eof:
        raise DataError(f"{path} unpacks to over {MAX_TEXT_BYTES} bytes")
    try:
        root = ElementTree.fromstring(xml.decode("utf-8"))
    except (UnicodeDecodeError, ElementTree.ParseError) as exc:
        raise DataError(f"{path} is not a UTF-8 MediaWiki export: {exc}") from None
    sentences: list[str] = []
    for element in root.iter():
        if element.tag.endswith("}text") and element.text:
            sentences += wiki_sentences(element.text)
    if not sentences:
        raise DataError(f"{path} holds no prose sentences")
    labels = torch.zeros(len(sentences), dtype=torch.long)
    return TextDataset("wiki_sample", sentences, labels, 1)
