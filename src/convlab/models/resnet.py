"""ResNets through torchvision's builders, for transfer learning and small images.

``weights: none | imagenet | PATH``. ImageNet weights come through torchvision's
weights API (its URL and torch's hub cache); a PATH is a local ``.pth`` or
``.safetensors`` state dict. Either way the classifier is replaced to fit the dataset,
and every file is read without unpickling code (safetensors or ``weights_only=True``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, PositiveFloat, field_validator
from torch import nn

from convlab.errors import ModelError
from convlab.models import register_architecture, register_builder
from convlab.schema import Strict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGES = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")  # freeze order

DEPTHS = ("resnet18", "resnet34", "resnet50")


def _depth(name: str) -> tuple[Any, list[int], Any]:
    """(block class, blocks per stage, ImageNet weights enum) of a torchvision ResNet."""
    from torchvision.models import resnet as tv  # lazy: importing it costs ~0.5 s

    return {
        "resnet18": (tv.BasicBlock, [2, 2, 2, 2], tv.ResNet18_Weights.IMAGENET1K_V1),
        "resnet34": (tv.BasicBlock, [3, 4, 6, 3], tv.ResNet34_Weights.IMAGENET1K_V1),
        "resnet50": (tv.Bottleneck, [3, 4, 6, 3], tv.ResNet50_Weights.IMAGENET1K_V2),
    }[name]


class ResNetSettings(Strict):
    weights: str = Field("none", description=(
        "none, imagenet, or a path to a .pth or .safetensors state dict"))
    freeze: str = Field("none", description=(
        "none, backbone (a linear probe), or a stage (conv1 ... layer4) up to which to freeze"))
    backbone_lr: PositiveFloat | None = Field(None, description=(
        "a separate learning rate for the pretrained layers (None: the optimizer's lr)"))
    stem: Literal["imagenet", "small"] = Field("imagenet", description=(
        "imagenet: 7x7 stride-2 conv and max pool; small: 3x3 stride-1 conv, no max pool "
        "(32x32 images)"))
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before the new classifier")

    @field_validator("freeze")
    @classmethod
    def _freeze(cls, v: str) -> str:
        frozen_stages(v)  # refuse an unknown stage when the config is read
        return v

    @property
    def pretrained(self) -> bool:
        return self.weights != "none"


@functools.cache
def transfer_resnet_class() -> type[nn.Module]:
    """The ResNet subclass, defined on first use so torchvision loads only when needed."""
    from torchvision.models.resnet import ResNet

    class TransferResNet(ResNet):
        """torchvision's ResNet (same state-dict keys) with frozen stages kept in eval mode.

        Frozen batch-norm layers must not update their running statistics, or a "frozen"
        backbone would still change during a linear probe.
        """

        frozen: tuple[str, ...] = ()
        backbone_lr: float | None = None
        input_norm: bool = False  # pretrained: standardize with ImageNet statistics

        def train(self, mode: bool = True) -> nn.Module:
            super().train(mode)
            for name in self.frozen:
                getattr(self, name).eval()
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
            if x.shape[1] == 1:  # grey images: repeat to the 3 channels the stem expects
                x = x.expand(-1, 3, -1, -1)
            if self.input_norm:  # x in [0, 1]: the convention the ImageNet weights expect
                x = (x - self.rgb_mean) / self.rgb_std
            return super().forward(x)

        def param_groups(self, lr: float) -> list[dict[str, Any]]:
            """Optimizer groups: backbone at ``backbone_lr``, the new head at ``lr``."""
            head = [p for p in self.fc.parameters() if p.requires_grad]
            body = [p for n, p in self.named_parameters()
                    if p.requires_grad and not n.startswith("fc.")]
            groups = [{"params": head, "lr": lr, "name": "head"}]
            if body:
                groups.append({"params": body, "lr": self.backbone_lr or lr, "name": "backbone"})
            return groups

    return TransferResNet


def _build(name: str, s: ResNetSettings, in_shape: tuple[int, int, int],
           num_classes: int) -> nn.Module:
    block, layers, imagenet = _depth(name)
    model: Any = transfer_resnet_class()(block, layers)
    if in_shape[0] not in (1, 3):
        raise ModelError(f"model: {name} takes 1- or 3-channel images, got {in_shape[0]}")
    if s.stem == "small":
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()  # type: ignore[assignment]
    from convlab.models import pretrained_wanted

    if not pretrained_wanted():
        pass  # a run's own trained weights are loaded over the model next
    elif s.weights == "imagenet":
        load_backbone(model, imagenet_state_dict(imagenet), f"ImageNet weights {imagenet}")
    elif s.pretrained:
        path = Path(s.weights).expanduser()
        load_backbone(model, read_state_dict(path), str(path))
    features = model.fc.in_features
    head: nn.Module = nn.Linear(features, num_classes)
    if s.dropout:
        head = nn.Sequential(nn.Dropout(s.dropout), nn.Linear(features, num_classes))
    model.fc = head  # type: ignore[assignment]
    model.frozen = frozen_stages(s.freeze)
    for stage in model.frozen:
        for p in getattr(model, stage).parameters():
            p.requires_grad_(False)
    model.backbone_lr = s.backbone_lr
    if s.pretrained:
        # Not persistent: the state dict keeps torchvision's keys exactly.
        model.register_buffer("rgb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        model.register_buffer("rgb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        model.input_norm = True
    return model


def frozen_stages(freeze: str) -> tuple[str, ...]:
    """``backbone``: every stage; ``layerK``: the stem and stages up to layerK."""
    if freeze == "none":
        return ()
    if freeze == "backbone":
        return STAGES
    if freeze not in STAGES:
        raise ValueError(
            f"model.freeze: expected none, backbone or one of {', '.join(STAGES)}, got {freeze!r}"
        )
    return STAGES[: STAGES.index(freeze) + 1]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A local state dict: safetensors, or a torch file loaded with ``weights_only=True``."""
    if not path.is_file():
        raise ModelError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, or refused by the weights-only unpickler
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{path}: not a readable state dict ({first})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]  # a common wrapper
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelError(f"{path}: expected a mapping of parameter names to tensors")
    return sd


def imagenet_state_dict(weights: Any) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights from torch's hub cache, downloading when online."""
    filename = weights.url.rsplit("/", 1)[-1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(path), progress=False)
        except Exception as e:  # offline, DNS, HTTP errors: say where to put the file
            raise ModelError(
                f"ImageNet weights not found at {path} and the download failed ({e}); "
                f"fetch {weights.url} on a machine that is online and place it there, or "
                f"set model.weights to a local .pth/.safetensors file"
            ) from None
    return read_state_dict(path)


def load_backbone(model: nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Load every backbone tensor; drop the source's classifier (it is replaced).

    Missing, unexpected or mis-shaped backbone keys mean a file for another
    architecture: one line naming the file and the first mismatches.
    """
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    theirs = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(theirs))
    unexpected = sorted(set(theirs) - set(own))
    shapes = [k for k in own.keys() & theirs.keys() if own[k].shape != theirs[k].shape]
    if missing or unexpected or shapes:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} keys (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[0]})")
        if shapes:
            k = sorted(shapes)[0]
            detail.append(f"{k} is {tuple(theirs[k].shape)}, expected {tuple(own[k].shape)}")
        raise ModelError(f"{source}: weights do not fit {type(model).__name__}: "
                         + "; ".join(detail))
    model.load_state_dict(theirs, strict=False)


for _name in DEPTHS:
    register_builder(
        _name, ResNetSettings,
        f"torchvision {_name}; weights none/imagenet/PATH, freezing, backbone lr",
    )(lambda s, shape, n, _n=_name: _build(_n, s, shape, n))

register_architecture(
    "resnet18-small", "resnet18", "resnet18 for 32x32 from scratch: 3x3 stem, no max pool",
    stem="small",
)
