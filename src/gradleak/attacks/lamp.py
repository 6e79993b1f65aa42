"""LAMP (Balunović, Dimitrov, Jovanović, Vechev; NeurIPS 2022): text leakage with a language
model prior.

Continuous steps alternate with discrete ones. A continuous step is Adam on the dummy
embeddings against the cosine gradient distance plus an embedding-length regulariser,
α·(mean ‖x_t‖ − mean ‖e_v‖)², which keeps the dummies at the length of real token rows (so that
they stay projectable). Every ``swap_every`` steps, a discrete step proposes, per sentence,
``candidates`` reorderings of its positions (swap two tokens, move one token, move a span) and
keeps the one, or the current order, that minimises the gradient loss plus ``lm_weight`` times
the language model's log-perplexity of its projected tokens: gradient descent cannot move a
token past its neighbours, a reordering can. In a batch, proposals also exchange tokens
between two sentences at one position or from one position on (beyond the paper, whose moves
stay within a sentence: here the starting tokens of each position are dealt to the sentences at
random, see ``text_inversion.gradient_rows``).

The language model is ``gpt_tiny`` trained briefly on a public corpus the attacker has
(``prior_corpus``, never the victims' data set; see ``attacks.text_prior``), because no
pretrained LM (LAMP used GPT-2) can be downloaded here; ``lm_weight: 0`` turns it off.
Restarts are compared by the same discrete score of their projected tokens.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from gradleak.attacks.base import ATTACKS, ProgressCallback
from gradleak.attacks.matching import trial_generator
from gradleak.attacks.objectives import OBJECTIVES
from gradleak.attacks.optim import LoopResult, LoopSettings, optimize, restore
from gradleak.attacks.plateau import rule_from
from gradleak.attacks.target import AttackTarget
from gradleak.attacks.text_inversion import (
    EmbeddingParametrization,
    Score,
    TextInversionAttack,
    TextInversionOptions,
    TextMatching,
    Trial,
    discrete_score,
)
from gradleak.attacks.text_prior import (
    PriorSettings,
    language_prior,
    sentence_nll,
)
from gradleak.attacks.text_problem import TextProblem
from gradleak.config import AttackConfig
from gradleak.data.text_corpus import TEXT_DATASETS
from gradleak.data.text_loading import default_text_cache
from gradleak.errors import ConfigError, UnknownNameError
from gradleak.models.text import GptTiny


class LampOptions(TextInversionOptions):
    objective: str = "cosine"
    reg_weight: float = Field(default=1.0, ge=0.0)
    """α of the embedding-length regulariser."""
    swap_every: PositiveInt = 25
    """Continuous steps between two discrete steps."""
    candidates: PositiveInt = 16
    """Changes proposed per sentence at each discrete step (see :func:`_propose`)."""
    rank_on: Literal["embeddings", "tokens"] = "embeddings"
    """What a proposal's gradient loss is measured on: the reordered continuous embeddings (as
    LAMP) or the rows of their projected tokens (what the attack would return). On Lee
    (T = 16, 4 seeds) the embeddings did as well or better: batch-1 ROUGE-2 1.0 vs 0.92."""
    lm_weight: float = Field(default=0.005, ge=0.0)
    """λ of the language model's log-perplexity in the discrete score; 0: no prior. Chosen on
    Lee sentences (T = 16, 100 iterations, 2-4 seeds): at 0.05 or 0.2 the weak prior outvotes
    the gradient (the cosine loss of two orders differs by ~1e-2, their log-perplexity by nats)
    and reorders correct sentences (batch-1 ROUGE-L 0.66 at 0.05 against 1.0 at 0.005); at
    batch 4, 0.005 and 0.05 tied and 0 was lower (ROUGE-1 0.19 vs 0.22)."""
    prior_corpus: str = "wiki_sample"
    """The attacker's public text (a name in ``TEXT_DATASETS``); must not be the victims'."""
    prior_steps: PositiveInt = 300
    prior_seed: int = Field(default=0, ge=0)
    prior_cache: str | None = None
    """Folder of the corpora and the trained prior; unset: ``$GRADLEAK_TEXT_CACHE`` or
    ``<data root>/text``."""


def _proposal(n: int, generator: torch.Generator) -> list[int]:
    """A random reordering of ``n`` positions: a swap, a one-token move or a span move."""
    order = list(range(n))
    if n < 2:
        return order
    kind = int(torch.randint(3, (1,), generator=generator))
    i, j = (int(v) for v in torch.randperm(n, generator=generator)[:2])
    if kind == 0:
        order[i], order[j] = order[j], order[i]
        return order
    width = 1 if kind == 1 else int(torch.randint(2, max(3, n // 2 + 1), (1,), generator=generator))
    start = min(i, n - width)
    span = order[start : start + width]
    rest = order[:start] + order[start + width :]
    at = int(torch.randint(len(rest) + 1, (1,), generator=generator))
    return rest[:at] + span + rest[at:]


def _propose(current: Tensor, b: int, positions: list[int], generator: torch.Generator) -> Tensor:
    """A candidate batch (B, T, D) that changes sentence ``b``: within it a reordering of its
    positions (:func:`_proposal`), or, in a batch, half the time an exchange with another
    sentence of the tokens at one position or of everything from one position on (a token
    placed in the wrong sentence cannot reach the right one by moves within its own)."""
    emb = current.clone()
    batch = current.shape[0]
    if batch > 1 and int(torch.randint(2, (1,), generator=generator)):
        other = (b + 1 + int(torch.randint(batch - 1, (1,), generator=generator))) % batch
        at = int(torch.randint(len(positions), (1,), generator=generator))
        swapped = (
            [positions[at]] if int(torch.randint(2, (1,), generator=generator)) else positions[at:]
        )
        emb[b, swapped], emb[other, swapped] = current[other, swapped], current[b, swapped]
        return emb
    order = _proposal(len(positions), generator)
    emb[b, positions] = current[b, [positions[i] for i in order]]
    return emb


@ATTACKS.register("lamp")
class Lamp(TextInversionAttack):
    name = "lamp"
    Options = LampOptions
    options: LampOptions
    default_lr = 0.05
    default_tv_weight = 0.0

    def __init__(self, config: AttackConfig) -> None:
        super().__init__(config)
        self.component("objective", OBJECTIVES)
        if self.options.lm_weight > 0 and self.options.prior_corpus not in TEXT_DATASETS:
            raise UnknownNameError(
                f"attack.options.prior_corpus for lamp: unknown text data set "
                f"{self.options.prior_corpus!r}; known: {', '.join(TEXT_DATASETS.names())}"
            )
        self._priors: dict[tuple[int, int], GptTiny | None] = {}
        """Priors by (tokeniser identity, length): built once per tokeniser this attack meets."""

    def check_dataset(self, dataset: str) -> None:
        """Refuse a prior trained on the victims' own data set (the attacker has no access to
        their sentences; a prior trained on them would leak the answer into the attack)."""
        if self.options.lm_weight > 0 and dataset == self.options.prior_corpus:
            others = [n for n in TEXT_DATASETS.names() if n != dataset]
            raise ConfigError(
                f"attack.options.prior_corpus={dataset} is the victims' data set: the language "
                f"prior must be public text the attacker has; use one of {', '.join(others)} "
                "or attack.options.lm_weight=0"
            )

    def cache(self) -> Path:
        opts = self.options
        return Path(opts.prior_cache).expanduser() if opts.prior_cache else default_text_cache()

    def prior(self, target: AttackTarget, length: int) -> GptTiny | None:
        opts = self.options
        if opts.lm_weight == 0:
            return None
        dataset = target.description.get("dataset")
        if isinstance(dataset, str):
            self.check_dataset(dataset)
        assert target.tokenizer is not None
        settings = PriorSettings(opts.prior_corpus, opts.prior_steps, seed=opts.prior_seed)
        model = language_prior(target.tokenizer, length, self.cache(), settings)
        return model.to(target.device)

    def matching(self, target: AttackTarget, problem: TextProblem) -> TextMatching:
        return TextMatching(
            target, problem, OBJECTIVES.get(self.options.objective), self.options.lookup_temperature
        )

    def _lm_term(self, problem: TextProblem, target: AttackTarget) -> _LmTerm:
        key = (id(target.tokenizer), problem.length)
        if key not in self._priors:
            self._priors[key] = self.prior(target, problem.length)
        return _LmTerm(self._priors[key], self.options.lm_weight)

    def score(self, problem: TextProblem, matching: TextMatching, target: AttackTarget) -> Score:
        return discrete_score(problem, matching, self._lm_term(problem, target))

    def trial(self, problem: TextProblem, matching: TextMatching, target: AttackTarget) -> Trial:
        opts = self.options
        lm = self._lm_term(problem, target)
        norm = problem.mean_row_norm()
        free = problem.free_mask()

        def loss(emb: Tensor) -> Tensor:
            value = matching(emb, problem.labels)
            if opts.reg_weight:
                lengths = emb.norm(dim=-1)[free[..., 0]]
                value = value + opts.reg_weight * (lengths.mean() - norm) ** 2
            return value

        iterations = self.config.iterations
        chunks = math.ceil(iterations / opts.swap_every)
        proposals = trial_generator()

        def run(
            param: EmbeddingParametrization, offset: int, callback: ProgressCallback | None
        ) -> LoopResult:
            record = LoopResult([], math.inf, 0)
            plateau = rule_from(self.config.stop_on_plateau)
            for chunk in range(chunks):
                steps = min(opts.swap_every, iterations - chunk * opts.swap_every)
                # A cosine decay over the whole run, read at each chunk's start (each chunk
                # starts a fresh Adam: a reordering moves rows, their moments do not follow).
                lr = self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * chunk / chunks)))
                settings = LoopSettings(
                    steps, lr, "adam", "constant", signed=False,
                    log_every=self.config.log_every, plateau=plateau,
                )  # fmt: skip
                part = optimize(
                    param, lambda: loss(param.images()), settings, callback, None,
                    offset + record.iterations,
                )  # fmt: skip
                restore(param, [], part.best_state)
                record.trace += part.trace
                record.iterations += part.iterations
                record.best_loss = min(record.best_loss, part.best_loss)
                record.diverged, record.interrupted = part.diverged, part.interrupted
                record.plateaued = part.plateaued
                if part.diverged or part.interrupted or part.plateaued:
                    break  # a stalled chunk ends the run (the rule is per chunk)
                self._reorder(param, problem, matching, lm, proposals)
            record.best_state = param.state()
            return record

        return run

    def _reorder(
        self,
        param: EmbeddingParametrization,
        problem: TextProblem,
        matching: TextMatching,
        lm: _LmTerm,
        generator: torch.Generator,
    ) -> None:
        """One discrete step: per sentence, the best of the current order and the proposals."""
        positions = [t for t in range(problem.length) if t not in problem.fixed]
        with torch.no_grad():
            current = param.values.detach().clone()
        for b in range(problem.batch):
            best_value, best_emb = math.inf, current
            for k in range(self.options.candidates + 1):
                emb = _propose(current, b, positions, generator) if k else current
                candidate = param.render(emb)
                ids = problem.project(candidate, self.options.projection)
                scored = problem.embed(ids) if self.options.rank_on == "tokens" else candidate
                value = float(matching(scored, problem.labels, create_graph=False).detach())
                value += float(lm(ids[b : b + 1]))
                if value < best_value:
                    best_value, best_emb = value, emb
            current = best_emb
        with torch.no_grad():
            param.values.copy_(current)


class _LmTerm:
    """λ · log-perplexity of each sentence under the prior (zeros without one)."""

    def __init__(self, model: GptTiny | None, weight: float) -> None:
        self.model, self.weight = model, weight

    def __call__(self, ids: Tensor) -> Tensor:
        if self.model is None or self.weight == 0:
            return torch.zeros(ids.shape[0])
        return self.weight * sentence_nll(self.model, ids).cpu()
