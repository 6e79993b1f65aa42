"""Text scores on known strings: ROUGE values, matching, token accuracy, exact rate."""

from __future__ import annotations

import math

import pytest
import torch

from gradleak.metrics.text import (
    exact_sentence_rate,
    match_sentences,
    rouge,
    score_text_batch,
    score_text_pairs,
    token_accuracy,
)

pytest.importorskip("rouge_score")


def test_rouge_known_values() -> None:
    same = rouge("the cat sat on the mat", "the cat sat on the mat")
    assert same == pytest.approx({"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0})
    # Same words reversed: every unigram matches, no bigram does, LCS is one word long.
    rev = rouge("a b c d", "d c b a")
    assert rev["rouge1"] == pytest.approx(1.0)
    assert rev["rouge2"] == pytest.approx(0.0)
    assert rev["rougeL"] == pytest.approx(0.25)
    # 2 of 4 reference words, 2 of 3 candidate words: F1 = 2·(1/2·2/3)/(1/2+2/3) = 4/7.
    part = rouge("a b c d", "a b x")
    assert part["rouge1"] == pytest.approx(4 / 7)
    assert rouge("a b", "x y")["rougeL"] == 0.0


def test_hungarian_is_one_to_one() -> None:
    truth = ["the market fell today", "rain is expected tomorrow"]
    recon = ["rain expected tomorrow", "the market fell"]
    assert match_sentences(truth, recon) == [1, 0]
    # Two copies of one good guess cannot both be credited: one sentence stays unmatched.
    dup = score_text_batch(truth, ["the market fell today", "the market fell today"])
    assert dup["rouge1_mean"] == pytest.approx(0.5)


def test_token_accuracy_and_exact_rate() -> None:
    truth = torch.tensor([[2, 5, 6, 3, 0], [2, 7, 8, 9, 3]])
    recon = torch.tensor([[2, 5, 6, 3, 4], [2, 7, 1, 9, 3]])
    assert token_accuracy(truth, recon) == pytest.approx(8 / 9)
    assert exact_sentence_rate(truth, recon) == pytest.approx(0.5)
    assert math.isnan(
        token_accuracy(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    )


def test_batch_score_reorders_ids_by_the_matching() -> None:
    truth = ["alpha beta", "gamma delta"]
    recon = ["gamma delta", "alpha beta"]
    truth_ids = torch.tensor([[10, 11], [12, 13]])
    recon_ids = torch.tensor([[12, 13], [10, 11]])
    scores = score_text_batch(truth, recon, truth_ids, recon_ids)
    assert scores == pytest.approx(
        {"rouge1_mean": 1.0, "rouge2_mean": 1.0, "rougeL_mean": 1.0,
         "token_accuracy": 1.0, "exact_sentence_rate": 1.0}
    )  # fmt: skip


def test_pair_scores_follow_the_matching_and_give_the_batch() -> None:
    truth = ["the market fell today", "rain is expected tomorrow"]
    recon = ["rain is expected", "the market fell today"]
    truth_ids = torch.tensor([[2, 5, 6, 7, 8, 3], [2, 9, 10, 11, 12, 3]])
    recon_ids = torch.tensor([[2, 9, 10, 11, 3, 0], [2, 5, 6, 7, 8, 3]])
    scores = score_text_pairs(truth, recon, truth_ids, recon_ids)
    assert scores.order == [1, 0]
    assert scores.pairs[0] == pytest.approx(
        {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "token_accuracy": 1.0, "exact": 1.0}
    )
    # 3 of 4 words, in order: R = 3/4, P = 1, F = 6/7; ids agree at 4 of 6 positions.
    assert scores.pairs[1]["rouge1"] == pytest.approx(6 / 7)
    assert scores.pairs[1]["token_accuracy"] == pytest.approx(4 / 6)
    assert scores.pairs[1]["exact"] == 0.0
    assert scores.batch == pytest.approx(score_text_batch(truth, recon, truth_ids, recon_ids))
    # Batch accuracy pools positions: (6 + 4) / 12, here equal to the mean of the pairs.
    assert scores.batch["token_accuracy"] == pytest.approx(10 / 12)
    assert "token_accuracy" not in score_text_pairs(truth, recon).pairs[0]
