"""A WordPiece tokeniser trained on the corpus itself, cached beside the data, and fixed-length ids.

No pretrained tokeniser can be downloaded here, and the attacks need one whose vocabulary
matches the data: the ``tokenizers`` library trains a WordPiece vocabulary on a few thousand
sentences in well under a second. The trained tokeniser is saved as its JSON file in the cache
folder (named by corpus, vocabulary size and a digest of the sentences), so a second run reuses
it and two corpora never share a vocabulary by accident.

Special tokens sit at fixed ids (``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3) so models and
attacks can name them without asking the tokeniser.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradleak.errors import DataError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID = range(4)


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise DataError(
            "text data needs the 'tokenizers' package: pip install 'gradleak[text]'"
        ) from None
    return tokenizers


@dataclass
class TextTokenizer:
    """A trained tokeniser and the fixed sequence length sentences are cut or padded to."""

    backend: object
    seq_len: int

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size())  # type: ignore[attr-defined]

    def encode(self, sentences: list[str]) -> torch.Tensor:
        """Ids (N, seq_len): ``[CLS]`` sentence ``[SEP]``, truncated or padded with ``[PAD]``."""
        if self.seq_len < 2:
            raise DataError(f"seq_len must be at least 2 (for [CLS] and [SEP]), got {self.seq_len}")
        rows = []
        for encoding in self.backend.encode_batch(sentences):  # type: ignore[attr-defined]
            body = list(encoding.ids)[: self.seq_len - 2]
            row = [CLS_ID, *body, SEP_ID]
            rows.append(row + [PAD_ID] * (self.seq_len - len(row)))
        return torch.tensor(rows, dtype=torch.long).reshape(len(sentences), self.seq_len)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Sentences back from ids (N, T), special tokens dropped, WordPiece pieces joined."""
        rows = ids.reshape(-1, ids.shape[-1]).tolist()
        return [self.backend.decode(row, skip_special_tokens=True) for row in rows]  # type: ignore[attr-defined]

    def tokens(self, ids: torch.Tensor) -> list[list[str]]:
        """The token strings of each row, special tokens dropped (what ROUGE scores)."""
        out = []
        for row in ids.reshape(-1, ids.shape[-1]).tolist():
            pieces = [self.backend.id_to_token(i) for i in row if i >= len(SPECIAL_TOKENS)]  # type: ignore[attr-defined]
            out.append([p for p in pieces if p is not None])
        return out


def _digest(sentences: list[str]) -> str:
    hasher = hashlib.sha256()
    for sentence in sentences:
        hasher.update(sentence.encode("utf-8") + b"\n")
    return hasher.hexdigest()[:16]


def wordpiece_vocabulary(words: Counter[str], vocab_size: int) -> dict[str, int]:
    """A WordPiece vocabulary of at most ``vocab_size`` entries, the same on every machine.

    The special tokens, then every character of the corpus both as a word start and as a
    ``##`` continuation (so any word of the corpus can be spelt and none becomes ``[UNK]``),
    then whole words by falling count, ties broken by the word itself. Ids follow that order.
    """
    chars = sorted({c for word in words for c in word})
    pieces = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    if len(pieces) > vocab_size:
        raise DataError(
            f"vocab_size {vocab_size} cannot hold the corpus' {len(chars)} characters: "
            f"use at least {len(pieces)}"
        )
    known = set(pieces)
    ranked = sorted((w for w in words if w not in known), key=lambda w: (-words[w], w))
    pieces += ranked[: vocab_size - len(pieces)]
    return {piece: i for i, piece in enumerate(pieces)}


def train_tokenizer(sentences: list[str], vocab_size: int) -> Any:
    """A lower-casing WordPiece tokeniser for ``sentences``, identical wherever it is built.

    The ``tokenizers`` library's own WordPiece trainer is not deterministic (three trainings
    on the same sentences, one thread, gave three different vocabularies), so a fresh machine
    would attack other token ids than the run it reproduces. The vocabulary is therefore
    counted here (:func:`wordpiece_vocabulary`) with the library's BERT normaliser and
    pre-tokeniser, and handed to the library's WordPiece model, which encodes and decodes.
    """
    tk = _tokenizers()
    if vocab_size <= len(SPECIAL_TOKENS):
        raise DataError(f"vocab_size must exceed {len(SPECIAL_TOKENS)}, got {vocab_size}")
    if not sentences:
        raise DataError("cannot train a tokeniser on no sentences")
    normalizer = tk.normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for sentence in sentences:
        words.update(
            w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(sentence))
        )
    vocab = wordpiece_vocabulary(words, vocab_size)
    backend = tk.Tokenizer(tk.models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = tk.decoders.WordPiece()
    backend.add_special_tokens(list(SPECIAL_TOKENS))  # already at ids 0-3; now skipped in decode
    return backend


def corpus_tokenizer(
    sentences: list[str], name: str, cache: Path, vocab_size: int = 2000, seq_len: int = 32
) -> TextTokenizer:
    """The tokeniser for this corpus and vocabulary size: loaded from ``cache`` or trained and saved."""
    tk = _tokenizers()
    path = cache / "tokenizers" / f"{name}-wordcount-{vocab_size}-{_digest(sentences)}.json"
    if path.is_file():
        try:
            return TextTokenizer(tk.Tokenizer.from_file(str(path)), seq_len)
        except Exception as exc:  # the library raises a bare Exception on a damaged file
            raise DataError(f"cached tokeniser {path} is damaged ({exc}); delete it") from None
    backend = train_tokenizer(sentences, vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    backend.save(tmp)
    os.replace(tmp, path)
    return TextTokenizer(backend, seq_len)
