"""Weight averaging and test-time augmentation: what evaluation and the saved weights see.

- :class:`WeightAverage`: an exponential moving average of the weights (and BatchNorm
  buffers), through torch's own ``AveragedModel`` with its EMA update; updated every
  ``every`` steps from ``start_epoch`` on, at a constant decay or one that grows with
  the run's progress (``ramp``); with ``lookahead`` the trained weights are set to the
  average after each update. Once it has been updated, evaluation, the best and
  the final weights are the average's.
- :class:`TTAModel`: the mean of the logits over fixed views of each image (the
  image, its mirror, small translations), chosen per split (``train.tta``). Averaging in
  logit space, as airbench does, keeps the loss comparable with the plain model's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from convlab.data.transforms import pad


def ramped_decay(decay: float, step: int, total_steps: int, ramp: float) -> float:
    """The decay of the update after step ``step`` of ``total_steps``: ``decay`` times
    the run's progress to the power ``ramp`` (airbench's schedule for ramp 3)."""
    if ramp == 0 or total_steps <= 0:
        return decay
    return decay * min(step / total_steps, 1.0) ** ramp


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float, every: int, start_epoch: int,
                 lookahead: bool = False, ramp: float = 0.0, total_steps: int = 0) -> None:
        self.decay, self.ramp, self.total_steps = decay, ramp, total_steps
        self.current = decay  # the decay of the next update; set in step()
        self.avg = AveragedModel(model, multi_avg_fn=self._update, use_buffers=True)
        self.every, self.start_epoch, self.lookahead = every, start_epoch, lookahead

    def _update(self, averaged: list[torch.Tensor], current: list[torch.Tensor],
                num_averaged: Any) -> None:
        # torch's get_ema_multi_avg_fn, with a decay that can change between updates;
        # integer buffers (BatchNorm's batch counter) cannot be lerped: they follow
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            torch._foreach_lerp_(averaged, current, 1.0 - self.current)
        else:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    @property
    def active(self) -> bool:
        """True once the average holds at least one update (before that: the model)."""
        return int(self.avg.n_averaged) > 0

    @property
    def module(self) -> nn.Module:
        return self.avg.module

    def step(self, model: nn.Module, step: int, epoch: int) -> None:
        """After optimizer step ``step`` (1-based) of epoch ``epoch`` (1-based)."""
        if epoch > self.start_epoch and step % self.every == 0:
            self.current = ramped_decay(self.decay, step, self.total_steps, self.ramp)
            self.avg.update_parameters(model)
            if self.lookahead:  # the trained weights continue from the average
                with torch.no_grad():
                    for mine, avg in zip(model.state_dict().values(),
                                         self.avg.module.state_dict().values(), strict=True):
                        if mine.is_floating_point():
                            mine.copy_(avg)

    def state_dict(self) -> dict[str, Any]:
        return self.avg.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.avg.load_state_dict(state)


VIEWS = ("flip", "translate")


class TTAModel(nn.Module):
    """Mean logits over the image and its views: ``flip`` adds the mirror image;
    ``translate`` adds shifts by ``pixels`` up-left and down-right (of each view), which
    together weigh as much as the unshifted views (airbench's weighting: the shifts are
    the less likely pictures)."""

    def __init__(self, net: nn.Module, views: list[str] | tuple[str, ...], pixels: int = 1,
                 fill: str = "zeros"):
        super().__init__()
        self.net, self.views, self.pixels, self.fill = net, tuple(views), pixels, fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        batches = [x]
        if "flip" in self.views:
            batches.append(x.flip(-1))
        logits = self._mean(batches)
        if "translate" in self.views:
            moved = [shift(b, d, self.pixels, self.fill) for b in batches for d in (-1, 1)]
            logits = 0.5 * logits + 0.5 * self._mean(moved)
        return logits

    def _mean(self, batches: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.net(b).float() for b in batches]).mean(0)


def shift(x: torch.Tensor, direction: int, pixels: int, fill: str = "zeros") -> torch.Tensor:
    """The batch moved by ``pixels`` along both axes, size kept; what moves in at the
    edge is zeros or (``fill="reflect"``) the image mirrored there."""
    p = pixels
    padded = pad(x, p, fill)
    h, w = x.shape[-2:]
    o = p + direction * p  # 0: moved down-right, 2p: moved up-left
    return padded[..., o:o + h, o:o + w]
