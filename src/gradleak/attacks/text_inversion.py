"""Shared machinery of the text inversions (TAG, LAMP, FedLeak on text).

Text inputs are discrete, so these attacks optimise *continuous* dummy token embeddings
(B, T, D), fed to the model in place of its embedding lookup, and project them to token ids at
the end, onto the token set the embedding update reveals (``attacks.text_problem``, which also
fixes ``[CLS]``/``[SEP]`` and resolves the labels). Trials start where ``attacks.text_starts``
says (by default at the tokens the position-embedding rows point to), restarts are compared by
the matching loss of their *projected* tokens, and the result is ids (B, T).

The replay passes the embeddings through the target's own update model and compares every
tensor of the observed update. By default the input carries a straight-through soft lookup
(:class:`SoftLookup`) so the token-embedding update is replayed and matched too; with
``lookup_temperature: null`` the parameters are passed *without* the token-embedding weight
(embedding inputs never touch it, so autograd would call it unused; ``functional_call`` falls
back to the module's own tensor) and that tensor is left out. Under FedAvg (several local
steps) the input embeddings are held fixed across the replayed steps: an approximation, since
the real client's embedding rows move with each step. Several groups (the curious client) and
several rounds (:class:`MultiRoundTarget`) come with the target's update model and
:func:`rounds_of`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from gradleak.attacks.base import Attack, AttackOptions, ProgressCallback, Reconstruction
from gradleak.attacks.matching import trial_generator
from gradleak.attacks.objectives import Objective
from gradleak.attacks.optim import LoopResult, LoopSettings, optimize, restore
from gradleak.attacks.parametrizations import Parametrization
from gradleak.attacks.target import AttackTarget, UpdateModel, rounds_of
from gradleak.attacks.text_problem import Projection, TextProblem
from gradleak.attacks.text_starts import TEXT_INITS, StartIds
from gradleak.config import AttackConfig
from gradleak.errors import CapabilityError
from gradleak.fl.functional import Params


class SoftLookup(nn.Module):
    """The model, fed continuous embeddings x whose token-embedding gradient it still reports.

    Its input keeps the value x, but carries a straight-through soft lookup,
    x + (A·E − stop_gradient(A·E)), with A the softmax over the candidate rows E of
    cosine(x, E)/τ: the replayed gradient then has, in row k of the token embedding,
    Σ_t A_tk ∂L/∂x_t, which is the client's own row (Σ over the positions holding token k) when
    every x_t sits on its token's row. So the observed embedding-layer update, the most direct
    evidence of which position holds which token, is matched too instead of thrown away.
    """

    def __init__(self, model: nn.Module, candidates: Tensor, temperature: float) -> None:
        super().__init__()
        self.inner = model
        self.candidates = candidates
        self.temperature = temperature

    def forward(self, x: Tensor) -> Tensor:
        embedding = self.inner.token_embedding
        assert isinstance(embedding, nn.Embedding)
        weight = embedding.weight[self.candidates]
        assign = (F.normalize(x, dim=-1) @ F.normalize(weight, dim=-1).T) / self.temperature
        soft = assign.softmax(dim=-1) @ weight
        return self.inner(x + (soft - soft.detach()))


class TextMatching:
    """Σ over the target's rounds of objective(replayed update on embeddings, observed update).

    With ``lookup`` (a :class:`SoftLookup` temperature) the replay runs through the soft lookup
    and every tensor is compared, the token embedding's included; without, the token-embedding
    weight is left out of the parameters and of the comparison (see the module docstring).
    """

    def __init__(
        self,
        target: AttackTarget,
        problem: TextProblem,
        objective: Objective,
        lookup: float | None = None,
    ) -> None:
        self.objective = objective
        self.rounds: list[tuple[UpdateModel, Params, Params, Params]] = []
        skip = problem.embedding_name
        for t in rounds_of(target):
            update_model = t.update_model
            if lookup is None:
                params = {k: v.detach() for k, v in t.parameters.items() if k != skip}
                observed = {k: v.detach() for k, v in t.observed_update.items() if k != skip}
                buffers = t.buffers
            else:
                rows = torch.tensor(problem.token_set, device=problem.matrix.device)
                wrapper = SoftLookup(t.model, rows, lookup)
                update_model = replace(update_model, model=wrapper)
                params = {f"inner.{k}": v.detach() for k, v in t.parameters.items()}
                observed = {f"inner.{k}": v.detach() for k, v in t.observed_update.items()}
                buffers = {f"inner.{k}": v for k, v in t.buffers.items()}
            self.rounds.append((update_model, params, buffers, observed))

    def __call__(self, embeddings: Tensor, labels: Tensor, create_graph: bool = True) -> Tensor:
        total: Tensor | None = None
        for update_model, params, buffers, observed in self.rounds:
            # The math kernel: the fused CPU attention kernels have no double backward.
            with sdpa_kernel(SDPBackend.MATH):
                dummy = update_model(params, buffers, embeddings, labels, create_graph)
            term = self.objective(dummy, observed)
            total = term if total is None else total + term
        assert total is not None
        return total


class EmbeddingParametrization(Parametrization):
    """Continuous token embeddings (B, T, D) optimised freely (TAG, LAMP); the fixed positions
    keep their own rows. ``values`` is what is optimised, indexed (B, T, ...) so that LAMP can
    reorder positions on it; :meth:`render` maps it to embeddings."""

    def __init__(self, start: Tensor, free: Tensor) -> None:
        self.values = start.detach().clone().requires_grad_(True)
        self.anchor = start.detach().clone()
        self.free = free

    def parameters(self) -> list[Tensor]:
        return [self.values]

    def render(self, values: Tensor) -> Tensor:
        return torch.where(self.free, values, self.anchor)

    def images(self) -> Tensor:
        return self.render(self.values)


class SimplexParametrization(EmbeddingParametrization):
    """Each free position a softmax mixture of the candidate rows (B, T, K logits).

    Beyond the papers: a free embedding settles in whichever token's cell it started in (on
    untrained bert_tiny the projection of 100 Adam steps was measured equal to the start's),
    while a mixture can move its weight to another token. The logits start at ``sharpness``
    times the start's cosine similarity to each row (0: the uniform mixture).
    """

    def __init__(self, start: Tensor, free: Tensor, rows: Tensor, sharpness: float) -> None:
        super().__init__(start, free)
        logits = sharpness * (F.normalize(start, dim=-1) @ F.normalize(rows, dim=-1).T)
        self.values = logits.detach().clone().requires_grad_(True)
        self.rows = rows

    def render(self, values: Tensor) -> Tensor:
        return torch.where(self.free, values.softmax(dim=-1) @ self.rows, self.anchor)


Trial = Callable[[EmbeddingParametrization, int, ProgressCallback | None], LoopResult]
"""Runs one trial's optimisation on a fresh parametrisation from an iteration offset (restart ×
iterations, for progress reports); returns its record with its best state loaded."""

Score = Callable[[Tensor], float]
"""Token ids (B, T) -> how well they explain the update (lower is better): picks the restart."""


def discrete_score(
    problem: TextProblem, matching: TextMatching, extra: Callable[[Tensor], Tensor] | None = None
) -> Score:
    """The matching loss of the projected tokens' own embeddings, plus ``extra(ids)`` (LAMP's
    language-model term): what the attacker can evaluate on a discrete candidate."""

    def score(ids: Tensor) -> float:
        loss = matching(problem.embed(ids), problem.labels, create_graph=False).detach()
        if extra is not None:
            loss = loss + extra(ids).sum()
        return float(loss)

    return score


def plain_trial(loss: Callable[[Tensor], Tensor], settings: LoopSettings) -> Trial:
    """One continuous optimisation of ``loss`` (embeddings -> scalar) with the shared loop."""

    def run(
        param: EmbeddingParametrization, offset: int, callback: ProgressCallback | None
    ) -> LoopResult:
        result = optimize(param, lambda: loss(param.images()), settings, callback, None, offset)
        restore(param, [], result.best_state)
        return result

    return run


@dataclass
class TextTrialResult:
    ids: Tensor
    embeddings: Tensor
    score: float
    result: LoopResult
    restart: int


def run_text_restarts(
    problem: TextProblem,
    trial: Trial,
    score: Score,
    start: StartIds,
    target: AttackTarget,
    restarts: int,
    iterations: int,
    generator: torch.Generator,
    noise: float,
    projection: Projection,
    callback: ProgressCallback | None,
    make_param: Callable[[Tensor, Tensor], EmbeddingParametrization] = EmbeddingParametrization,
) -> tuple[TextTrialResult, list[float]]:
    """``restarts`` trials from fresh starts; the one whose *projected* tokens score lowest.

    Choosing by the discrete score (not the continuous loss) keeps the restart whose tokens, as
    returned, explain the update best; it reads nothing but the target.
    """
    best: TextTrialResult | None = None
    scores: list[float] = []
    for restart in range(restarts):
        begin = problem.start(start(problem, target, generator), generator, noise)
        param = make_param(begin, problem.free_mask())
        result = trial(param, restart * iterations, callback)
        embeddings = param.images().detach()
        ids = problem.project(embeddings, projection)
        value = score(ids)
        scores.append(value if math.isfinite(value) else math.inf)
        if best is None or scores[-1] < best.score:
            best = TextTrialResult(ids, embeddings, scores[-1], result, restart)
        if result.interrupted:
            break
    assert best is not None
    return best, scores


def text_reconstruction(
    problem: TextProblem, best: TextTrialResult, scores: list[float], **extra: object
) -> Reconstruction:
    """Package the chosen ids (B, T) long, the labels used and the optimisation record; only
    small Python values go to ``extra``."""
    result = best.result
    return Reconstruction(
        images=best.ids.detach().cpu().long(),
        labels=problem.labels.detach(),
        iterations=result.iterations,
        best_loss=result.best_loss,
        trace=result.trace,
        diverged=result.diverged,
        interrupted=result.interrupted,
        extra={
            "best_restart": best.restart,
            "restart_scores": scores,
            "token_set_size": len(problem.token_set),
            "fixed_positions": sorted(problem.fixed),
            **extra,
        },
    )


class TextInversionOptions(AttackOptions):
    """Options every embedding inversion shares."""

    projection: Projection = "cosine"
    """How a continuous embedding becomes a token: the candidate row of highest cosine
    similarity (default: the optimisation moves directions more than lengths) or nearest in L2."""
    init: str = "gradient_rows"
    """The tokens a trial starts at, a name in :data:`TEXT_INITS`: ``gradient_rows`` (each
    position's tokens read off the embedding and position-embedding updates) or ``tokens``
    (uniform draws from the recovered set)."""
    init_noise: float = Field(default=0.5, ge=0.0)
    """Gaussian noise added to the starting rows, in units of the rows' standard deviation."""
    token_threshold: float | None = Field(default=None, ge=0.0)
    """Rows of the embedding update above this size are the token set (raise it under DP
    noise); None reads it off the update (``text_tokens.noise_floor``: zero for a plain
    upload, the gap above float residue for the curious client's subtracted update)."""
    parametrization: Literal["embeddings", "simplex"] = "embeddings"
    """``embeddings``: free continuous embeddings (the papers); ``simplex``: softmax mixtures
    of the candidate rows (:class:`SimplexParametrization`)."""
    simplex_sharpness: float = Field(default=1.0, ge=0.0)
    """Simplex: how strongly the start's tokens weigh in the initial mixture (0: uniform). On
    Lee (T = 16, batch 1, uniform-token start, 100 steps) 0 and 1 tied (TAG token accuracy
    0.66 and 0.63, against 0.15 for free embeddings from the same start)."""
    structure: bool = True
    """Hold ``[CLS]`` at position 0 (and ``[SEP]`` last when no sentence is padded)."""
    lookup_temperature: float | None = Field(default=0.05, gt=0.0)
    """Match the token-embedding update too, through a soft lookup of this temperature
    (:class:`SoftLookup`); None leaves that tensor out, as a plain embedding inversion does."""


class TextInversionAttack(Attack):
    """Skeleton: read the problem off the target, run restarts of :meth:`trial`, keep the one
    whose projected tokens :meth:`score` best. Subclasses give the objective and the loop."""

    modality = "text"
    Options: ClassVar[type[AttackOptions]] = TextInversionOptions
    options: TextInversionOptions

    def __init__(self, config: AttackConfig) -> None:
        super().__init__(config)
        self.component("init", TEXT_INITS)

    def check_model(self, model: nn.Module) -> None:
        """Refuse, before any data is read, a model with no token embedding to invert."""
        if not isinstance(getattr(model, "token_embedding", None), nn.Embedding):
            raise CapabilityError(
                f"attack {self.name} inverts token embeddings, but {type(model).__name__} has no "
                "token_embedding: use a text model (bert_tiny, gpt_tiny) or an image attack"
            )

    @abstractmethod
    def matching(self, target: AttackTarget, problem: TextProblem) -> TextMatching:
        """The gradient distance on continuous embeddings."""

    @abstractmethod
    def trial(self, problem: TextProblem, matching: TextMatching, target: AttackTarget) -> Trial:
        """One trial's optimisation."""

    def score(self, problem: TextProblem, matching: TextMatching, target: AttackTarget) -> Score:
        """How restarts are compared: the projected tokens' matching loss by default."""
        _ = target
        return discrete_score(problem, matching)

    def make_param(
        self, problem: TextProblem
    ) -> Callable[[Tensor, Tensor], EmbeddingParametrization]:
        """The parametrisation factory ``options.parametrization`` names."""
        if self.options.parametrization == "embeddings":
            return EmbeddingParametrization
        rows = problem.matrix[problem.candidates]
        sharpness = self.options.simplex_sharpness
        return lambda start, free: SimplexParametrization(start, free, rows, sharpness)

    def extra(self) -> dict[str, object]:
        """Small values this attack adds to the reconstruction's ``extra``."""
        return {}

    def reconstruct(
        self, target: AttackTarget, callback: ProgressCallback | None = None
    ) -> Reconstruction:
        opts = self.options
        problem = TextProblem.of(
            self.name, target, self.config.labels, opts.token_threshold, opts.structure
        )
        matching = self.matching(target, problem)
        best, scores = run_text_restarts(
            problem,
            self.trial(problem, matching, target),
            self.score(problem, matching, target),
            TEXT_INITS.get(opts.init),
            target,
            self.config.restarts,
            self.config.iterations,
            trial_generator(),
            opts.init_noise,
            opts.projection,
            callback,
            self.make_param(problem),
        )
        return text_reconstruction(problem, best, scores, **self.extra())
