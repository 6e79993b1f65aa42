"""Token-set recovery from the embedding layer's gradient.

The input embedding's weight gradient is a sum of one row per token occurrence, scattered into
that token's row, so exactly the rows of the tokens present in the batch are non-zero (exact for
any model whose other layers do not also write into that matrix, e.g. an untied output head).
Under FedAvg the weight delta of plain SGD has the same support. The attacker needs only the
observed update and the parameter's name: no labels, no data.

Where the update is noised (DP) or decayed (weight decay touches every row), every row moves;
``threshold`` then keeps only rows whose largest entry exceeds it.
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


def recover_token_set(
    update: dict[str, Tensor], embedding_name: str, threshold: float = 0.0
) -> set[int]:
    """Ids of the embedding rows whose update has an entry of size above ``threshold``."""
    if embedding_name not in update:
        raise CapabilityError(
            f"the observed update holds no {embedding_name!r} to read tokens from"
        )
    grad = update[embedding_name].detach()
    if grad.ndim != 2:
        raise CapabilityError(f"{embedding_name!r} is not an embedding matrix: {tuple(grad.shape)}")
    row_size = grad.abs().amax(dim=1)
    return set(torch.nonzero(row_size > threshold).flatten().tolist())
