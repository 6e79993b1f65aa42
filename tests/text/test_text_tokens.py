"""Token-set recovery is exact on an untrained bert_tiny for real Lee sentences."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradleak.attacks.text_tokens import embedding_parameter_name, recover_token_set
from gradleak.data.text_corpus import load_lee
from gradleak.data.text_tokenizer import corpus_tokenizer
from gradleak.errors import CapabilityError
from gradleak.models import MODELS, ModelSpec

pytest.importorskip("tokenizers")


@pytest.mark.parametrize("batch", [1, 4])
def test_exact_on_untrained_bert_for_real_sentences(
    text_cache: Path, tmp_path: Path, batch: int
) -> None:
    data = load_lee(text_cache)
    tok = corpus_tokenizer(data.sentences, "lee", tmp_path, vocab_size=1000, seq_len=24)
    picked = torch.randperm(len(data), generator=torch.Generator().manual_seed(3))[:batch]
    sample = data.subset(picked)
    ids = tok.encode(sample.sentences)
    torch.manual_seed(0)
    model = MODELS.get("bert_tiny")(
        ModelSpec(num_classes=2, channels=0, image_size=0, vocab_size=tok.vocab_size, seq_len=24)
    )
    loss = torch.nn.functional.cross_entropy(model(ids), sample.labels)
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    update = dict(zip(names, grads, strict=True))

    recovered = recover_token_set(update, embedding_parameter_name(model))
    truth = set(ids.flatten().tolist())
    assert recovered == truth
    # Chance: the same number of ids drawn at random from the vocabulary overlaps far less.
    guess = torch.randperm(tok.vocab_size, generator=torch.Generator().manual_seed(4))[: len(truth)]
    chance = len(truth & set(guess.tolist())) / len(truth)
    assert chance < 0.5


def test_missing_embedding_is_a_capability_error() -> None:
    with pytest.raises(CapabilityError, match=r"no 'emb\.weight'"):
        recover_token_set({}, "emb.weight")
    with pytest.raises(CapabilityError, match="no token_embedding"):
        embedding_parameter_name(torch.nn.Linear(2, 2))


def test_threshold_drops_noise_rows() -> None:
    grad = torch.full((5, 3), 1e-6)
    grad[2] = 0.5
    assert recover_token_set({"w": grad}, "w", threshold=0.0) == {0, 1, 2, 3, 4}
    assert recover_token_set({"w": grad}, "w") == {2}  # the automatic floor sees the residue
    assert recover_token_set({"w": grad}, "w", threshold=1e-3) == {2}


def test_automatic_floor_keeps_real_rows_of_a_plain_upload() -> None:
    """Absent rows exactly zero and a wide range among the present ones: nothing is cut."""
    grad = torch.zeros((6, 2))
    grad[0], grad[1], grad[4] = 0.5, 2e-3, 1e-4  # a 5000x range, but 1e-4 is 2e-4 of the top
    assert recover_token_set({"w": grad}, "w") == {0, 1, 4}
