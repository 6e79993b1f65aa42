"""The small text transformers: ids or embeddings in, and the embedding gradient's support."""

from __future__ import annotations

import pytest
import torch

from gradleak.errors import ConfigError
from gradleak.models import MODELS, ModelSpec
from gradleak.models.text import BertTiny, GptTiny

SPEC = ModelSpec(num_classes=3, channels=0, image_size=0, vocab_size=100, seq_len=12)


@pytest.mark.parametrize("name", ["bert_tiny", "gpt_tiny"])
def test_ids_and_embeddings_give_the_same_output(name: str) -> None:
    torch.manual_seed(0)
    model = MODELS.get(name)(SPEC)
    ids = torch.randint(4, 100, (2, 10), generator=torch.Generator().manual_seed(1))
    embedded = model.token_embedding(ids)  # type: ignore[operator]
    out_ids, out_emb = model(ids), model(embedded)
    torch.testing.assert_close(out_ids, out_emb)
    assert out_ids.shape == ((2, 3) if name == "bert_tiny" else (2, 10, 100))


def test_gpt_is_causal_and_its_loss_ignores_padding() -> None:
    torch.manual_seed(0)
    model = GptTiny(50, 8)
    a = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    b = a.clone()
    b[0, -1] = 30
    # Changing the last token leaves every earlier position's prediction unchanged.
    torch.testing.assert_close(model(a)[:, :-1], model(b)[:, :-1])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0, 0, 0]])
    loss = model.next_token_loss(padded)
    loss.backward()
    assert torch.isfinite(loss)


def test_embedding_gradient_rows_are_the_tokens_present() -> None:
    torch.manual_seed(0)
    for model in (BertTiny(60, 10, 2, pooling="mean"), GptTiny(60, 10)):
        ids = torch.tensor([[2, 7, 9, 9, 3], [2, 11, 40, 3, 0]])
        model.zero_grad()
        if isinstance(model, GptTiny):
            loss = model.next_token_loss(ids, pad_id=None)
        else:
            loss = torch.nn.functional.cross_entropy(model(ids), torch.tensor([0, 1]))
        loss.backward()
        grad = model.token_embedding.weight.grad
        assert grad is not None
        rows = set(torch.nonzero(grad.abs().sum(1)).flatten().tolist())
        # The LM's last input position predicts nothing the loss sees, so a token only found
        # there (the 0 ending row 1) gets no gradient; the classifier sees every position.
        expected = {2, 3, 7, 9, 11, 40} | (set() if isinstance(model, GptTiny) else {0})
        assert rows == expected


def test_text_model_needs_vocab_and_rejects_long_input() -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        MODELS.get("bert_tiny")(ModelSpec(num_classes=2, channels=3, image_size=32))
    with pytest.raises(ValueError, match="longer than seq_len"):
        BertTiny(20, 4, 2)(torch.zeros(1, 5, dtype=torch.long))
