"""Token-set recovery from the embedding layer's gradient.

The input embedding's weight gradient is a sum of one row per token occurrence, scattered into
that token's row, so exactly the rows of the tokens present in the batch are non-zero (exact for
any model whose other layers do not also write into that matrix, e.g. an untied output head).
Under FedAvg the weight delta of plain SGD has the same support. The attacker needs only the
observed update and the parameter's name: no labels, no data.

Where the update is noised (DP) or decayed (weight decay touches every row), every row moves;
``threshold`` then keeps only rows whose largest entry exceeds it. By default the threshold is
read off the update: zero for a plain upload, or the gap between float residue and real rows
where the attacker derived the update by subtraction (the curious client).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradleak.errors import CapabilityError


def embedding_parameter_name(model: nn.Module) -> str:
    """The name, in ``model.named_parameters()``, of ``model.token_embedding.weight``."""
    embedding = getattr(model, "token_embedding", None)
    if not isinstance(embedding, nn.Embedding):
        raise CapabilityError(
            f"{type(model).__name__} has no token_embedding to recover tokens from"
        )
    for name, param in model.named_parameters():
        if param is embedding.weight:
            return name
    raise CapabilityError("the token embedding's weight is not a parameter of the model")


NOISE_GAP = 10.0
"""How many times larger than the row below it the smallest present token's row must be."""
RESIDUE = 1e-4
"""Rows below this fraction of the largest row can be float residue. Measured on bert_tiny,
movie reviews, the curious client's 4 x 2 sentences (its update is a difference of global
models): residue up to 1.6e-6 (1.3e-5 of the largest row), the rarest real token 1.0e-4
(8.5e-4 of it): a gap of 64 times."""


def noise_floor(row_size: Tensor) -> float:
    """The automatic threshold: 0 when absent rows are exactly zero (a plain upload); else the
    top of the residue, where the widest gap (a ratio of at least :data:`NOISE_GAP` between
    consecutive non-zero row sizes) has only rows under :data:`RESIDUE` of the largest below
    it, the boundary between float error and real tokens."""
    sizes = torch.sort(row_size[row_size > 0]).values
    if sizes.numel() < 2:
        return 0.0
    ratios = sizes[1:] / sizes[:-1]
    widest = int(torch.argmax(ratios))
    below = float(sizes[widest])
    if float(ratios[widest]) >= NOISE_GAP and below <= RESIDUE * float(sizes[-1]):
        return below
    return 0.0


def recover_token_set(
    update: dict[str, Tensor], embedding_name: str, threshold: float | None = None
) -> set[int]:
    """Ids of the embedding rows whose update has an entry of size above ``threshold``; None
    (the default) chooses it from the update itself (:func:`noise_floor`)."""
    if embedding_name not in update:
        raise CapabilityError(
            f"the observed update holds no {embedding_name!r} to read tokens from"
        )
    grad = update[embedding_name].detach()
    if grad.ndim != 2:
        raise CapabilityError(f"{embedding_name!r} is not an embedding matrix: {tuple(grad.shape)}")
    row_size = grad.abs().amax(dim=1)
    cut = noise_floor(row_size) if threshold is None else threshold
    return set(torch.nonzero(row_size > cut).flatten().tolist())
