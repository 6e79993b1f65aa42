"""What a text inversion reads off its target before optimising: the token set, the labels,
the positions the tokeniser's structure fixes, and the projection back to tokens.

- The token set: the rows of the token-embedding update that are non-zero are exactly the
  tokens present (``attacks.text_tokens``; exact for an untrained embedding). Every position is
  projected only onto these tokens.
- The tokeniser's public structure: ``[CLS]`` always sits at position 0, and when ``[PAD]`` is
  absent from the token set no sentence is padded, so ``[SEP]`` sits at the last position.
  Those positions are held fixed, and never projected onto elsewhere.
- The labels, given or recovered from the classifier head's gradient (``attacks.labels``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gradleak.attacks.labels import resolve_labels
from gradleak.attacks.target import AttackTarget
from gradleak.attacks.text_tokens import embedding_parameter_name, recover_token_set
from gradleak.data.text_tokenizer import CLS_ID, PAD_ID, SEP_ID
from gradleak.errors import CapabilityError

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
        threshold: float | None = None,
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
