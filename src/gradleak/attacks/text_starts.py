"""Where a text inversion's dummy embeddings start: token ids per position, by name.

``tokens`` draws them uniformly from the recovered set; ``gradient_rows`` (the default) reads
them off the update itself, from how the position-embedding rows explain the token-embedding
rows (see :func:`gradient_rows`), which at batch 1 is most of the attack.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gradleak.attacks.target import AttackTarget
from gradleak.attacks.text_problem import TextProblem
from gradleak.registry import Registry

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
