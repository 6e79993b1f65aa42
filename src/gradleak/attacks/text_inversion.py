"""Shared machinery of the text inversions (TAG, LAMP, FedLeak on text).

Text inputs are discrete, so these attacks optimise *continuous* dummy token embeddings
(B, T, D) fed to the model in place of its embedding lookup, and project them to token ids at
the end. What the attacker knows and uses, all from its :class:`AttackTarget`:

- the token set: the rows of the token-embedding update that are non-zero are exactly the
  tokens present (``attacks.text_tokens``; exact for an untrained embedding). Every position is
  projected only onto these tokens, and the dummy embeddings start at their rows;
- the tokeniser's public structure: ``[CLS]`` always sits at position 0, and when ``[PAD]`` is
  absent from the token set no sentence is padded, so ``[SEP]`` sits at the last position.
  Those positions are held fixed, and ``[CLS]`` is never projected elsewhere;
- the labels, given or recovered from the classifier head's gradient (``attacks.labels``).

The replay passes the embeddings through the target's own update model, with the parameters
*minus* the token-embedding weight (embedding inputs never touch it, so autograd would call it
unused; ``functional_call`` falls back to the module's own tensor) and is compared with every
other tensor of the observed update. Under FedAvg (several local steps) the input embeddings
are held fixed across the replayed steps: an approximation, since the real client's embedding
rows move with each step. Several groups (the curious client) and several rounds
(:class:`MultiRoundTarget`) come with the target's update model and :func:`rounds_of`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from gradleak.attacks.base import Attack, AttackOptions, ProgressCallback, Reconstruction
from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.matching import trial_generator
from gradleak.attacks.objectives import Objective
from gradleak.attacks.optim import LoopResult, LoopSettings, optimize, restore
from gradleak.attacks.parametrizations import Parametrization
from gradleak.attacks.target import AttackTarget, UpdateModel, rounds_of
from gradleak.attacks.text_tokens import embedding_parameter_name, recover_token_set
from gradleak.config import AttackConfig
from gradleak.data.text_tokenizer import CLS_ID, PAD_ID, SEP_ID
from gradleak.errors import CapabilityError
from gradleak.fl.functional import Params
from gradleak.registry import Registry

Projection = Literal["cosine", "l2"]


def require_text_target(attack: str, target: AttackTarget) -> str:
    """The token-embedding parameter's name, or one CapabilityError line when ``target`` is not
    a text target an embedding inversion can attack."""
    if target.modality != "text" or len(target.image_shape) != 1:
        raise CapabilityError(
            f"attack {attack} reconstructs text, but the target is {target.modality} of input "
            f"shape {tuple(target.image_shape)}: use an image attack or a text data set"
        )
    return embedding_parameter_name(target.model)


@dataclass(frozen=True)
class TextProblem:
    """What every text inversion reads off the target before optimising."""

    embedding_name: str
    matrix: Tensor
    """The token-embedding weight the update started from (V, D), detached."""
    candidates: Tensor
    """Ids a free position may be projected onto (K,): the recovered token set less ``[CLS]``
    (and ``[SEP]`` when it is fixed at the end)."""
    token_set: tuple[int, ...]
    labels: Tensor
    batch: int
    length: int
    fixed: dict[int, int] = field(default_factory=dict)
    """Position -> id held at every sentence (the tokeniser's structure)."""

    @classmethod
    def of(
        cls,
        attack: str,
        target: AttackTarget,
        labels_mode: str,
        threshold: float = 0.0,
        structure: bool = True,
    ) -> TextProblem:
        """Token set, labels and (with ``structure``) the fixed positions of ``target``."""
        name = require_text_target(attack, target)
        tokens = recover_token_set(target.observed_update, name, threshold)
        if not tokens:
            raise CapabilityError(
                f"attack {attack}: the embedding update is zero, no tokens to use"
            )
        length = int(target.image_shape[0])
        fixed = {0: CLS_ID} if structure and CLS_ID in tokens else {}
        if structure and PAD_ID not in tokens and SEP_ID in tokens and length > 1:
            fixed[length - 1] = SEP_ID
        free = sorted(t for t in tokens if t not in fixed.values()) or sorted(tokens)
        matrix = target.parameters[name].detach()
        return cls(
            embedding_name=name,
            matrix=matrix,
            candidates=torch.tensor(free, dtype=torch.long, device=matrix.device),
            token_set=tuple(sorted(tokens)),
            labels=resolve_labels(labels_mode, target),
            batch=target.num_images,
            length=length,
            fixed=fixed,
        )

    def free_mask(self) -> Tensor:
        """(B, T, 1) booleans: True at the positions the attack optimises."""
        mask = torch.ones((self.batch, self.length, 1), dtype=torch.bool)
        for position in self.fixed:
            mask[:, position] = False
        return mask.to(self.matrix.device)

    def fixed_ids(self, ids: Tensor) -> Tensor:
        """``ids`` (B, T) with the fixed positions written in."""
        out = ids.clone()
        for position, token in self.fixed.items():
            out[:, position] = token
        return out

    def start(self, ids: Tensor, generator: torch.Generator, noise: float) -> Tensor:
        """Embeddings (B, T, D) at the rows of ``ids`` plus Gaussian noise of ``noise`` times
        the rows' scale at the free positions; the fixed positions their own rows."""
        rows = self.matrix[self.fixed_ids(ids).to(self.matrix.device)]
        scale = float(self.matrix[self.candidates].std())
        jitter = torch.randn(rows.shape, generator=generator).to(rows) * noise * scale
        return torch.where(self.free_mask(), rows + jitter, rows)

    def project(self, embeddings: Tensor, how: Projection = "cosine") -> Tensor:
        """Token ids (B, T) long: each free position's nearest candidate row (cosine or L2)."""
        rows = self.matrix[self.candidates]
        flat = embeddings.detach().reshape(-1, embeddings.shape[-1])
        if how == "cosine":
            score = F.normalize(flat, dim=-1) @ F.normalize(rows, dim=-1).T
        else:
            score = -torch.cdist(flat, rows)
        ids = self.candidates[score.argmax(dim=-1)].reshape(self.batch, self.length)
        return self.fixed_ids(ids)

    def embed(self, ids: Tensor) -> Tensor:
        return self.matrix[ids]

    def mean_row_norm(self) -> float:
        """Mean L2 norm of the token set's rows: LAMP's embedding-length target."""
        return float(self.matrix[list(self.token_set)].norm(dim=-1).mean())


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
    """Continuous token embeddings (B, T, D); the fixed positions keep their own rows."""

    def __init__(self, start: Tensor, free: Tensor) -> None:
        self.values = start.detach().clone().requires_grad_(True)
        self.anchor = start.detach().clone()
        self.free = free

    def parameters(self) -> list[Tensor]:
        return [self.values]

    def images(self) -> Tensor:
        return torch.where(self.free, self.values, self.anchor)


StartIds = Callable[[TextProblem, AttackTarget, torch.Generator], Tensor]
"""(problem, target, generator) -> the token ids (B, T) a trial's embeddings start at."""

TEXT_INITS: Registry[StartIds] = Registry("text init")


@TEXT_INITS.register("tokens")
def random_tokens(problem: TextProblem, target: AttackTarget, generator: torch.Generator) -> Tensor:
    """Every free position a token drawn uniformly from the recovered set."""
    _ = target
    shape = (problem.batch, problem.length)
    return problem.candidates.cpu()[
        torch.randint(len(problem.candidates), shape, generator=generator)
    ]


def position_parameter_name(model: nn.Module) -> str | None:
    """The name of the learned position embedding's weight (a module named
    ``position_embedding``), or None when the model has none."""
    for name, module in model.named_modules():
        if name.split(".")[-1] == "position_embedding" and isinstance(module, nn.Embedding):
            return f"{name}.weight"
    return None


def explain_away(
    positions: Tensor, tokens: Tensor, free: list[int], used_up: float = 1e-3
) -> dict[int, int]:
    """One sentence: assign each free position the token row its gradient row explains.

    Greedy on cos(r_v, g_t), the position rows g_t against the tokens' residual rows r_v (1 for
    an exact match), each assignment subtracting g_t from r_v: a token found at several
    positions (its row is their sum) keeps a residual until every one of them is taken, and a
    token whose residual has dropped below ``used_up`` of its row is not offered again.
    """
    residual = tokens.clone()
    size = tokens.norm(dim=-1)
    left = list(free)
    out: dict[int, int] = {}
    while left:
        gain = F.normalize(positions[left], dim=-1) @ F.normalize(residual, dim=-1).T  # (L, K)
        spent = residual.norm(dim=-1) <= used_up * size
        if bool(spent.all()):
            spent = torch.zeros_like(spent)
        gain[:, spent] = -math.inf
        flat = int(gain.argmax())
        row, token = divmod(flat, gain.shape[1])
        t = left.pop(row)
        out[t] = token
        residual[token] -= positions[t]
    return out


@TEXT_INITS.register("gradient_rows")
def gradient_rows(problem: TextProblem, target: AttackTarget, generator: torch.Generator) -> Tensor:
    """Each position starts at the tokens whose embedding-update rows its position-embedding
    update row explains.

    Input x_t = e(id_t) + p_t, so the position row's gradient is Σ_b ∂L/∂x_bt and the token row
    of v is the sum over v's occurrences of ∂L/∂x. For one sentence the position rows add up to
    the token rows exactly, and :func:`explain_away` assigns them (exact for distinct tokens in
    FedSGD; under FedAvg the rows are sums over local steps and only nearly agree). In a batch
    a position row mixes the sentences, so position t takes the B tokens whose rows point most
    like it, dealt to the sentences in a random order per trial (the optimisation, and LAMP's
    exchanges, sort them out). Random tokens for a model without position embeddings.
    """
    name = position_parameter_name(target.model)
    if name is None or name not in target.observed_update:
        return random_tokens(problem, target, generator)
    positions = target.observed_update[name].detach()[: problem.length].double().cpu()
    tokens = target.observed_update[problem.embedding_name].detach()[problem.candidates]
    tokens = tokens.double().cpu()
    if problem.batch == 1:
        free = [t for t in range(problem.length) if t not in problem.fixed]
        ids = torch.zeros((1, problem.length), dtype=torch.long)
        for t, token in explain_away(positions, tokens, free).items():
            ids[0, t] = problem.candidates[token]
        return ids
    similarity = F.normalize(positions, dim=-1) @ F.normalize(tokens, dim=-1).T
    ranked = similarity.argsort(dim=-1, descending=True)
    top = ranked[:, torch.arange(problem.batch) % ranked.shape[1]]  # (T, B)
    dealt = torch.stack(
        [top[t, torch.randperm(problem.batch, generator=generator)] for t in range(problem.length)]
    )
    return problem.candidates.cpu()[dealt.T]


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
) -> tuple[TextTrialResult, list[float]]:
    """``restarts`` trials from fresh starts; the one whose *projected* tokens score lowest.

    Choosing by the discrete score (not the continuous loss) keeps the restart whose tokens, as
    returned, explain the update best; it reads nothing but the target.
    """
    best: TextTrialResult | None = None
    scores: list[float] = []
    for restart in range(restarts):
        begin = problem.start(start(problem, target, generator), generator, noise)
        param = EmbeddingParametrization(begin, problem.free_mask())
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
    token_threshold: float = Field(default=0.0, ge=0.0)
    """Rows of the embedding update above this size are the token set (raise it under DP noise)."""
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
        )
        return text_reconstruction(problem, best, scores, **self.extra())
