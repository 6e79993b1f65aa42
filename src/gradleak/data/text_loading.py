"""Text as a federation's data: a corpus, its tokeniser and fixed-length token ids.

``data.name`` is a corpus in ``text_corpus.TEXT_DATASETS`` (read offline from the pinned gensim
wheel, cached under ``data.root`` or :func:`default_text_cache`), one in
``text_download.DOWNLOADABLE_TEXT`` (``wikitext2``, fetched with ``data.download=true``), or
``text`` for the user's own file or folder at ``data.root``. The WordPiece vocabulary (``data.vocab_size``) is trained on the
whole corpus once and cached beside the corpus cache; sentences are then cut or padded to
``data.seq_len`` tokens and selected (``shuffle``, ``max_images``) as images are.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from gradleak.config import DataConfig
from gradleak.data.base import TokenDataset
from gradleak.data.text_corpus import TEXT_DATASETS, TextDataset, load_text_path
from gradleak.data.text_download import DOWNLOADABLE_TEXT
from gradleak.data.text_tokenizer import corpus_tokenizer
from gradleak.errors import ConfigError

USER_TEXT = "text"
"""``data.name`` for the user's own text at ``data.root`` (a file, or a folder of classes)."""

TEXT_CACHE_ENV = "GRADLEAK_TEXT_CACHE"


def is_text_dataset(name: str) -> bool:
    """Whether ``data.name`` names text (a bundled or downloadable corpus, or the user's own)."""
    return name == USER_TEXT or name in TEXT_DATASETS or name in DOWNLOADABLE_TEXT


def default_text_cache() -> Path:
    """Where the corpora and tokenisers are cached: ``$GRADLEAK_TEXT_CACHE`` or
    ``~/.cache/gradleak/text``."""
    env = os.environ.get(TEXT_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gradleak" / "text"


def _corpus(cfg: DataConfig) -> tuple[TextDataset, Path]:
    """The configured corpus and the cache folder its tokeniser lives in."""
    if cfg.name == USER_TEXT:
        if cfg.root is None:
            raise ConfigError(
                "data.name=text reads the user's text: set data.root to a file or folder"
            )
        return load_text_path(cfg.root.expanduser()), default_text_cache()
    cache = cfg.root.expanduser() if cfg.root is not None else default_text_cache()
    if cfg.name in DOWNLOADABLE_TEXT:
        return DOWNLOADABLE_TEXT.get(cfg.name)(cache, cfg.download), cache
    return TEXT_DATASETS.get(cfg.name)(cache), cache


def load_token_dataset(cfg: DataConfig, seed: int) -> TokenDataset:
    """The configured text as token ids (N, ``seq_len``), its labels and its tokeniser."""
    corpus, cache = _corpus(cfg)
    tokenizer = corpus_tokenizer(corpus.sentences, corpus.name, cache, cfg.vocab_size, cfg.seq_len)
    count = len(corpus)
    if cfg.shuffle:
        keep = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    else:
        keep = torch.arange(count)
    if cfg.max_images is not None:
        keep = keep[: cfg.max_images]
    kept = corpus.subset(keep)
    ids = tokenizer.encode(kept.sentences)
    return TokenDataset(
        cfg.name, ids, kept.labels, kept.num_classes, list(kept.class_names), tokenizer=tokenizer
    )
