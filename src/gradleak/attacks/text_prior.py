"""LAMP's language-model prior: a small causal LM trained on a public corpus the attacker has.

No pretrained language model can be downloaded here, so the prior is ``gpt_tiny`` trained for a
few hundred steps on a corpus of :data:`~gradleak.data.text_corpus.TEXT_DATASETS` other than the
victims' (an attacker's public text, not the clients' sentences), encoded with the target's
tokeniser (public: it ships with the model), so its vocabulary is the model's. Training takes
seconds on a CPU; the weights are cached under ``<cache>/lm_priors/``, named by corpus, a
digest of the tokeniser and the training settings, and the seed, so a second attack reuses them.
It is weak next to GPT-2 (which LAMP used): it knows which pieces follow which, not English.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gradleak.data.text_corpus import TEXT_DATASETS
from gradleak.data.text_tokenizer import PAD_ID, TextTokenizer
from gradleak.errors import DataError
from gradleak.models.text import GptTiny


@dataclass(frozen=True)
class PriorSettings:
    corpus: str = "wiki_sample"
    steps: int = 300
    batch: int = 32
    lr: float = 3e-3
    seed: int = 0


def prior_path(cache: Path, tokenizer: TextTokenizer, length: int, s: PriorSettings) -> Path:
    backend = tokenizer.backend.to_str()  # type: ignore[attr-defined]
    key = hashlib.sha256(f"{backend}|{length}|{s.steps}|{s.batch}|{s.lr}".encode()).hexdigest()[:16]
    return cache / "lm_priors" / f"{s.corpus}-gpt_tiny-{key}-seed{s.seed}.pt"


def train_prior(ids: Tensor, vocab: int, s: PriorSettings) -> GptTiny:
    """``gpt_tiny`` trained on next-token loss over ``ids`` (N, T) (its own seeded RNG, so the
    caller's random state is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        model = GptTiny(vocab, ids.shape[1])
        optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
        model.train()
        for _ in range(s.steps):
            batch = ids[torch.randint(len(ids), (min(s.batch, len(ids)),))]
            loss = model.next_token_loss(batch, pad_id=PAD_ID)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def language_prior(
    tokenizer: TextTokenizer, length: int, cache: Path, settings: PriorSettings
) -> GptTiny:
    """The prior for this tokeniser and sentence length: loaded from ``cache`` or trained there."""
    path = prior_path(cache, tokenizer, length, settings)
    vocab = tokenizer.vocab_size
    if path.is_file():
        model = GptTiny(vocab, length)
        try:
            model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
        except Exception as exc:  # a truncated or foreign file: say which and how to fix it
            raise DataError(f"cached language prior {path} is damaged ({exc}); delete it") from None
        return model.eval()
    sentences = TEXT_DATASETS.get(settings.corpus)(cache).sentences
    ids = replace(tokenizer, seq_len=length).encode(sentences)
    model = train_prior(ids, vocab, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model


def sentence_nll(model: GptTiny, ids: Tensor) -> Tensor:
    """Mean next-token negative log-likelihood of each sentence (B,), padding targets ignored:
    the log-perplexity LAMP adds to the gradient loss when it ranks reorderings."""
    with torch.no_grad():
        logits = model(ids.to(next(model.parameters()).device))[:, :-1]
        targets = ids[:, 1:].to(logits.device)
        nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        mask = (targets != PAD_ID).to(nll.dtype)
        return (nll * mask).sum(1) / mask.sum(1).clamp_min(1)
