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
    """Sums of loss and top-k hits over a split, kept on the device: (loss_sum, hits...).

    ``add`` only keeps (detached) references to the batch's loss, logits and targets; they
    are folded into the sums in bulk, one concatenated ``topk`` for up to ``FLUSH_STEPS``
    batches, whenever ``sums`` or ``result`` is read. Per batch the update was ~15 tiny
    ops (~100 us on the 2-core CPU: 7% of a batch-2 step); in bulk it is a list append.
    The sums are the same (hits exactly; the loss sum up to float64 rounding order).
    """

    FLUSH_STEPS = 64  # batches held at most before folding them in ...
    FLUSH_ELEMENTS = 1 << 20  # ... or this many logits (4 MB in float32)

    def __init__(self, ks: tuple[int, ...], device: torch.device) -> None:
        self.ks = ks
        self._sums = torch.zeros(1 + len(ks), dtype=torch.float64, device=device)
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._pending_elements = 0
        self.count = 0

    @property
    def sums(self) -> torch.Tensor:
        """(1 + len(ks),) float64: loss sum, then hits for each k (pending batches folded)."""
        self.flush()
        return self._sums

    @sums.setter
    def sums(self, value: torch.Tensor) -> None:  # a resumed epoch restores its sums
        self._pending, self._pending_elements = [], 0
        self._sums = value

    @torch.no_grad()
    def add(self, loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        """``loss`` is the batch mean; weighted by the batch size so the epoch mean is exact."""
        self._pending.append((loss.detach(), logits.detach(), target))
        self._pending_elements += logits.numel()
        self.count += target.shape[0]
        if len(self._pending) >= self.FLUSH_STEPS or self._pending_elements >= self.FLUSH_ELEMENTS:
            self.flush()

    @torch.no_grad()
    def flush(self) -> None:
        """Fold the pending batches into the sums: a handful of ops, no host sync."""
        if not self._pending:
            return
        losses, logits, targets = zip(*self._pending, strict=True)
        self._pending, self._pending_elements = [], 0
        sizes = torch.tensor([t.shape[0] for t in targets], dtype=torch.float64)
        batch_means = torch.stack(losses).reshape(-1).double()  # (n,)
        self._sums[0] += batch_means.dot(sizes.to(batch_means.device, non_blocking=True))
        self._sums[1:] += topk_correct(torch.cat(logits), torch.cat(targets), self.ks)

    def result(self) -> dict[str, float]:
        """One host sync: mean loss and accuracies in [0, 1]."""
        s = self.sums.tolist()  # folds the pending batches in
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
