"""Loss and top-k accuracy, accumulated on the device without host syncs."""

from __future__ import annotations

import torch
from torch import nn


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...]) -> torch.Tensor:
    """Number of samples whose target is among the top-k logits, for each k: shape (len(ks),)."""
    kmax = max(ks)
    top = logits.topk(kmax, dim=1).indices  # (B, kmax)
    hit = top.eq(target[:, None])  # (B, kmax)
    return torch.stack([hit[:, :k].any(dim=1).sum() for k in ks])


def metric_ks(num_classes: int) -> tuple[int, ...]:
    """Top-1 always, top-5 only where it means something (5 < classes)."""
    return (1, 5) if num_classes > 5 else (1,)


class Accumulator:
    """Sums of loss and top-k hits over a split, kept on the device: (loss_sum, hits...)."""

    def __init__(self, ks: tuple[int, ...], device: torch.device) -> None:
        self.ks = ks
        self.sums = torch.zeros(1 + len(ks), dtype=torch.float64, device=device)
        self.count = 0

    @torch.no_grad()
    def add(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """``loss`` is the batch mean; weighted by the batch size so the epoch mean is exact."""
        b = target.shape[0]
        self.sums[0] += loss.detach().double() * b
        self.sums[1:] += topk_correct(logits.detach(), target, self.ks)
        self.count += b

    def result(self) -> dict[str, float]:
        """One host sync: mean loss and accuracies in [0, 1]."""
        s = self.sums.tolist()
        n = max(self.count, 1)
        out = {"loss": s[0] / n}
        for k, hits in zip(self.ks, s[1:], strict=True):
            out[f"top{k}"] = hits / n
        return out


@torch.inference_mode()
def evaluate(
    model: nn.Module, batches: object, criterion: nn.Module, ks: tuple[int, ...],
    device: torch.device, autocast: object,
) -> dict[str, float]:
    """Mean loss and top-k accuracy of ``model`` (in eval mode) over an iterable of batches."""
    was_training = model.training
    model.eval()
    acc = Accumulator(ks, device)
    for x, y in batches:  # type: ignore[attr-defined]
        with autocast:  # type: ignore[attr-defined]
            logits = model(x)
        acc.add(criterion(logits.float(), y), logits, y)
    model.train(was_training)
    return acc.result()
