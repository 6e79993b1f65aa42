"""Small transformers for text, randomly initialised (as breaching's text cases are).

``bert_tiny``: an encoder classifier (token + learned position embeddings, 2 pre-norm layers,
a linear head on the ``[CLS]`` position or on the mean over positions). ``gpt_tiny``: a causal
language model with the same body and a causal mask, trained on next-token loss.

Both take either token ids (LongTensor (B, T)) or continuous token embeddings
(FloatTensor (B, T, D)) in ``forward``: attacks such as TAG optimise the embeddings directly
and project them to tokens afterwards. Both expose ``token_embedding`` (an ``nn.Embedding``)
whose weight gradient is non-zero exactly in the rows of the tokens present. The language
model's output layer is deliberately *not* tied to the input embedding, so that property holds
for it too (a tied head would give every row a gradient).

For the language model, a token found only at the last position of its sequences gets no
gradient (that position predicts nothing the loss sees), so recovery from it misses such tokens.

Dropout is 0: a client's gradient is then a function of its data alone, as the attacks assume.
"""

from __future__ import annotations

import torch
from torch import nn

from gradleak.errors import ConfigError
from gradleak.models.base import MODELS, ModelSpec

TEXT_MODELS = frozenset({"bert_tiny", "gpt_tiny"})
"""The registered models that take token ids, not images."""

DEFAULT_DIM = 64
DEFAULT_HEADS = 4
DEFAULT_LAYERS = 2


class _Body(nn.Module):
    """Token and position embeddings, transformer layers, a final LayerNorm."""

    def __init__(self, vocab_size: int, seq_len: int, dim: int, heads: int, layers: int) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Embedding(seq_len, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, D) embeddings; (B, T, D) floats pass through unchanged."""
        if tokens.dtype in (torch.long, torch.int, torch.int16, torch.int8, torch.uint8):
            if tokens.ndim != 2:
                raise ValueError(f"token ids must be (B, T), got {tuple(tokens.shape)}")
            return self.token_embedding(tokens)
        if tokens.ndim != 3 or tokens.shape[-1] != self.token_embedding.embedding_dim:
            raise ValueError(
                f"embeddings must be (B, T, {self.token_embedding.embedding_dim}),"
                f" got {tuple(tokens.shape)}"
            )
        return tokens

    def forward(self, tokens: torch.Tensor, causal: bool) -> torch.Tensor:
        x = self.embed(tokens)
        length = x.shape[1]
        if length > self.seq_len:
            raise ValueError(f"sequence of {length} tokens is longer than seq_len {self.seq_len}")
        x = x + self.position_embedding(torch.arange(length, device=x.device))
        mask = (
            nn.Transformer.generate_square_subsequent_mask(length, device=x.device)
            if causal
            else None
        )
        return self.norm(self.layers(x, mask=mask, is_causal=causal))


class BertTiny(nn.Module):
    """Encoder classifier: logits (B, num_classes) from the first (``cls``) or mean position."""

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        num_classes: int,
        dim: int = DEFAULT_DIM,
        heads: int = DEFAULT_HEADS,
        layers: int = DEFAULT_LAYERS,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.body = _Body(vocab_size, seq_len, dim, heads, layers)
        self.pooling = pooling
        self.head = nn.Linear(dim, num_classes)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.body.token_embedding

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.body(tokens, causal=False)
        pooled = hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)
        return self.head(pooled)


class GptTiny(nn.Module):
    """Causal language model: logits (B, T, vocab) for the next token at every position."""

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        dim: int = DEFAULT_DIM,
        heads: int = DEFAULT_HEADS,
        layers: int = DEFAULT_LAYERS,
    ) -> None:
        super().__init__()
        self.body = _Body(vocab_size, seq_len, dim, heads, layers)
        self.lm_head = nn.Linear(dim, vocab_size)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.body.token_embedding

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.body(tokens, causal=True))

    def next_token_loss(
        self, ids: torch.Tensor, inputs: torch.Tensor | None = None, pad_id: int | None = 0
    ) -> torch.Tensor:
        """Mean cross-entropy of predicting ``ids[:, 1:]`` from the prefix.

        ``inputs`` (ids or embeddings) defaults to ``ids``; targets equal to ``pad_id`` are
        ignored, so padding teaches nothing.
        """
        logits = self(ids if inputs is None else inputs)[:, :-1]
        targets = ids[:, 1:]
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=-100 if pad_id is None else pad_id,
        )


def _text_sizes(spec: ModelSpec) -> tuple[int, int]:
    if spec.vocab_size <= 0 or spec.seq_len <= 0:
        raise ConfigError("text models need the tokeniser's vocab_size and seq_len")
    return spec.vocab_size, spec.seq_len


@MODELS.register("bert_tiny")
def bert_tiny(spec: ModelSpec) -> nn.Module:
    vocab, seq_len = _text_sizes(spec)
    return BertTiny(vocab, seq_len, spec.num_classes)


@MODELS.register("gpt_tiny")
def gpt_tiny(spec: ModelSpec) -> nn.Module:
    vocab, seq_len = _text_sizes(spec)
    return GptTiny(vocab, seq_len)
