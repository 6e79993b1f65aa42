"""How many of a batch's labels an attack recovered.

Label-recovery attacks (iDLG's batch variants) return a multiset of labels with no link to
image positions, so the reported score is order-free; the positional score is for attacks that
do predict per-image labels.
"""

from __future__ import annotations

import torch


def label_accuracy(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Fraction of the true labels recovered, as multisets (multiplicity counts; order not)."""
    if true.numel() == 0:
        raise ValueError("label accuracy needs at least one true label")
    classes = int(max(pred.max().item() if pred.numel() else 0, true.max().item())) + 1
    pred_counts = torch.bincount(pred.flatten().long().cpu(), minlength=classes)
    true_counts = torch.bincount(true.flatten().long().cpu(), minlength=classes)
    return torch.minimum(pred_counts, true_counts).sum().item() / true.numel()


def positional_label_accuracy(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Fraction of positions where the predicted label equals the true one."""
    if pred.shape != true.shape or true.numel() == 0:
        raise ValueError(
            f"positional accuracy needs equal, non-empty shapes: {pred.shape}, {true.shape}"
        )
    return (pred.cpu() == true.cpu()).double().mean().item()
