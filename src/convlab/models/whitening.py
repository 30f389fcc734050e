"""A patch-whitening first layer: a frozen convolution whose filters decorrelate the
pixels of every k x k patch, fitted once on the training split.

The filters are the eigenvectors of the training patches' covariance, each scaled by
1 / sqrt(eigenvalue + eps), so the layer's outputs are uncorrelated with unit variance
on the training data (PCA whitening of patches; the first layer of Keller Jordan's
airbench, which also keeps each filter's negative so a ReLU/GELU after it loses
nothing). The weights never train; the bias may train for the first ``bias_epochs``.

Any model may use it: ``PatchWhitening(in_channels, kernel=2)``. The runner calls
:meth:`PatchWhitening.fit_to_data` on every module that has one, before the first step
of a new run, with normalized training images (docs/architecture.md, "A user's own
code" lists this hook); the fitted weights are part of the state dict, so the run
folder's weights record them and a resumed run never refits.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchWhitening(nn.Module):
    def __init__(self, in_channels: int, kernel: int = 2, eps: float = 5e-4,
                 negatives: bool = True, bias_epochs: int = 0) -> None:
        super().__init__()
        d = in_channels * kernel * kernel
        self.kernel, self.eps, self.bias_epochs = kernel, eps, bias_epochs
        self.conv = nn.Conv2d(in_channels, d * (2 if negatives else 1), kernel, bias=True)
        self.conv.weight.requires_grad_(False)
        nn.init.zeros_(self.conv.bias)
        self.conv.bias.requires_grad_(bias_epochs > 0)
        self.register_buffer("eigenvalues", torch.zeros(d))
        self.register_buffer("fitted", torch.tensor(False))
        self.negatives = negatives

    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D', H-k+1, W-k+1)
        return self.conv(x)

    @torch.no_grad()
    def fit_to_data(self, images: torch.Tensor) -> None:
        """Fit the filters on normalized training images (N, C, H, W)."""
        k = self.kernel
        c = images.shape[1]
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k).double()
        cov = torch.cov(patches.T)  # (D, D)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
        filters = eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + self.eps)[:, None]
        filters = filters.reshape(-1, c, k, k)
        if self.negatives:
            filters = torch.cat([filters, -filters])
        self.conv.weight.copy_(filters.to(self.conv.weight))
        self.eigenvalues.copy_(eigenvalues.to(self.eigenvalues))
        self.fitted.fill_(True)

    def on_epoch_start(self, epoch: int) -> None:
        """Freeze the bias once ``bias_epochs`` epochs have trained (epoch counts from 0)."""
        self.conv.bias.requires_grad_(epoch < self.bias_epochs)


def fit_data_dependent(model: nn.Module, images: torch.Tensor) -> list[str]:
    """Call ``fit_to_data`` on every module that has one and is not fitted yet; return
    their names (recorded in the run's summary)."""
    fitted = []
    for name, m in model.named_modules():
        fit = getattr(m, "fit_to_data", None)
        if callable(fit) and not bool(getattr(m, "fitted", False)):
            fit(images)
            fitted.append(name or type(m).__name__)
    return fitted
