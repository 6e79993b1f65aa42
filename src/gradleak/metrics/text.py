"""Scores for reconstructed text: ROUGE-1/2/L, token accuracy, exact sentence rate.

An attack returns a batch of sentences in arbitrary order, so, as for images, reconstructions
are paired one-to-one with the true sentences by a Hungarian assignment, here maximising the
summed ROUGE-L F-measure; every score is then taken over those pairs. ROUGE is the
``rouge-score`` package (the implementation the text-leakage papers report), F-measure, no
stemming. Token accuracy and the exact rate compare ids position by position over the true
sentence's non-padding positions, so they reward order, which ROUGE-1 does not.

Ground truth is passed in by the scorer only; nothing here is reachable from an attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment

from gradleak.errors import ConfigError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@lru_cache(maxsize=1)
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ConfigError(
            "text scoring needs 'rouge-score': pip install 'gradleak[text]'"
        ) from None
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)


def rouge(reference: str, candidate: str) -> dict[str, float]:
    """ROUGE-1, -2 and -L F-measures of ``candidate`` against ``reference``."""
    scores = _scorer().score(reference, candidate)
    return {name: float(scores[name].fmeasure) for name in ROUGE_TYPES}


def match_sentences(truth: list[str], recon: list[str]) -> list[int]:
    """For each true sentence, the index of its reconstruction (Hungarian on ROUGE-L F)."""
    if len(truth) != len(recon):
        raise ValueError(f"{len(truth)} true sentences but {len(recon)} reconstructions")
    gain = [[rouge(t, r)["rougeL"] for r in recon] for t in truth]
    rows, cols = linear_sum_assignment(gain, maximize=True)
    order = [0] * len(truth)
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        order[row] = col
    return order


def _content(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    return ids != pad_id


def token_accuracy(truth_ids: torch.Tensor, recon_ids: torch.Tensor, pad_id: int = 0) -> float:
    """Share of the true non-padding positions whose reconstructed id is the true one."""
    if truth_ids.shape != recon_ids.shape:
        raise ValueError(f"id shapes differ: {tuple(truth_ids.shape)} vs {tuple(recon_ids.shape)}")
    mask = _content(truth_ids, pad_id)
    if not mask.any():
        return float("nan")
    return float(((truth_ids == recon_ids) & mask).sum() / mask.sum())


def exact_sentence_rate(truth_ids: torch.Tensor, recon_ids: torch.Tensor, pad_id: int = 0) -> float:
    """Share of sentences reconstructed exactly at every true non-padding position."""
    mask = _content(truth_ids, pad_id)
    exact = ((truth_ids == recon_ids) | ~mask).all(dim=1)
    return float(exact.float().mean())


@dataclass(frozen=True)
class TextScores:
    """One batch scored pair by pair, what both ``metrics.json`` and the picture need.

    ``order[i]`` is the index of the reconstruction matched to true sentence ``i``; ``pairs[i]``
    holds that pair's ``rouge1``, ``rouge2`` and ``rougeL`` and, when ids were given, its
    ``token_accuracy`` (NaN for an all-padding sentence) and ``exact`` (1.0 or 0.0); ``batch`` is
    :func:`score_text_batch`'s dict. The batch token accuracy pools positions over the batch
    (not a mean of the per-pair accuracies), so a long sentence weighs more, as it should.
    """

    order: list[int]
    pairs: list[dict[str, float]]
    batch: dict[str, float]


def score_text_pairs(
    truth: list[str],
    recon: list[str],
    truth_ids: torch.Tensor | None = None,
    recon_ids: torch.Tensor | None = None,
    pad_id: int = 0,
) -> TextScores:
    """Match ``recon`` to ``truth`` one-to-one (Hungarian on ROUGE-L), then score each pair and
    the batch; ids (B, T), when given, are reordered by the same matching."""
    order = match_sentences(truth, recon)
    pairs = [rouge(t, recon[j]) for t, j in zip(truth, order, strict=True)]
    batch = {f"{name}_mean": sum(p[name] for p in pairs) / len(pairs) for name in ROUGE_TYPES}
    if truth_ids is not None and recon_ids is not None:
        matched = recon_ids[torch.tensor(order, dtype=torch.long)]
        batch["token_accuracy"] = token_accuracy(truth_ids, matched, pad_id)
        batch["exact_sentence_rate"] = exact_sentence_rate(truth_ids, matched, pad_id)
        for i, pair in enumerate(pairs):
            pair["token_accuracy"] = token_accuracy(
                truth_ids[i : i + 1], matched[i : i + 1], pad_id
            )
            pair["exact"] = exact_sentence_rate(truth_ids[i : i + 1], matched[i : i + 1], pad_id)
    return TextScores(order, pairs, batch)


def score_text_batch(
    truth: list[str],
    recon: list[str],
    truth_ids: torch.Tensor | None = None,
    recon_ids: torch.Tensor | None = None,
    pad_id: int = 0,
) -> dict[str, float]:
    """Match ``recon`` to ``truth`` one-to-one, then the mean scores over the pairs.

    Keys: ``rouge1_mean``, ``rouge2_mean``, ``rougeL_mean``, and, when ids (B, T) are given,
    ``token_accuracy`` and ``exact_sentence_rate`` (ids are reordered by the same matching).
    """
    return score_text_pairs(truth, recon, truth_ids, recon_ids, pad_id).batch
