"""The network: a torchvision ResNet-50 backbone, frozen, and a small trainable head for the 5 counts.

This is the one model definition: training builds it, the artifact stores its state dict and its config, and the
endpoint rebuilds it from the same code (packed into the model artifact's ``code/``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from bincount.data.labels import NUM_CLASSES

log = logging.getLogger(__name__)

ARCH = "resnet50"
FEATURE_DIM = 2048
HEADS: tuple[str, ...] = ("linear", "mlp")
MODEL_FILE = "model.pth"
CONFIG_FILE = "model_config.json"
PRETRAINED_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2


class PretrainedWeightsUnavailable(RuntimeError):
    """The ImageNet weights could not be downloaded (no internet); train with ``--pretrained false``."""


class ModelMismatchError(ValueError):
    """A state dict does not fit the network described by its config."""


@dataclass(frozen=True)
class ModelConfig:
    """What it takes to rebuild the network; stored beside ``model.pth`` in the artifact."""

    arch: str = ARCH
    head: str = "linear"
    num_classes: int = NUM_CLASSES
    hidden: int = 256

    def __post_init__(self) -> None:
        if self.arch != ARCH:
            raise ValueError(f"arch must be {ARCH!r}, got {self.arch!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}; got {self.head!r}")
        if self.num_classes < 2 or self.hidden < 1:
            raise ValueError(f"num_classes must be >= 2 and hidden >= 1, got {self.num_classes}, {self.hidden}")

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CONFIG_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelConfig:
        """The config saved in ``model_dir``; the classic linear head when there is none."""
        path = Path(model_dir) / CONFIG_FILE
        if not path.exists():
            return cls()
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (TypeError, ValueError) as e:
            raise ModelMismatchError(f"{path} is not a valid model config: {e}") from e


def build_head(config: ModelConfig) -> nn.Module:
    """The trainable head: one linear layer (the classic recipe) or a small MLP."""
    if config.head == "linear":
        return nn.Linear(FEATURE_DIM, config.num_classes)
    return nn.Sequential(
        nn.Linear(FEATURE_DIM, config.hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.2),
        nn.Linear(config.hidden, config.num_classes),
    )


def backbone_fingerprint(backbone: nn.Module) -> str:
    """A short hash of the backbone's weights and buffers: what the features cache and the int8 backbone record to
    tell that they were made by this backbone."""
    digest = hashlib.sha256()
    for name, tensor in sorted(backbone.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


class BinCountNet(nn.Module):
    """ResNet-50 features -> head. A frozen backbone stays in eval mode (fixed BatchNorm statistics), so its
    output is a pure function of the image even while the head trains."""

    def __init__(self, backbone: nn.Module, head: nn.Module, *, freeze_backbone: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> BinCountNet:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def _features(weights: ResNet50_Weights | None) -> nn.Module:
    """ResNet-50 without its classifier: images -> 2048 features."""
    net = resnet50(weights=weights)
    net.fc = nn.Identity()
    return net


def _backbone(pretrained: bool) -> nn.Module:
    if pretrained:
        try:
            return _features(PRETRAINED_WEIGHTS)
        except Exception as e:  # urllib/ssl/socket errors differ by platform; all mean "no download"
            raise PretrainedWeightsUnavailable(
                f"could not download the pretrained ResNet-50 weights ({PRETRAINED_WEIGHTS}): {e}. "
                "Without internet, train with '--pretrained false' (random init: counts will be poor)."
            ) from e
    else:
        log.warning(
            "!!! RANDOM INIT: the ResNet-50 backbone is NOT pretrained (--pretrained false). "
            "Frozen random features give poor counts; use this only for offline tests and demos. !!!"
        )
    return _features(None)


def build_model(
    config: ModelConfig | None = None, *, pretrained: bool = True, freeze_backbone: bool = True
) -> BinCountNet:
    """Build the network; ``pretrained`` downloads the ImageNet weights (raises PretrainedWeightsUnavailable)."""
    config = config or ModelConfig()
    return BinCountNet(_backbone(pretrained), build_head(config), freeze_backbone=freeze_backbone)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "state dict") -> None:
    """Load ``state`` strictly, with a message that says what does not match."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{k}: {tuple(state[k].shape)} in file, {tuple(v.shape)} in network"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if wrong_shape:
            parts.append("shape mismatch: " + "; ".join(wrong_shape[:5]))
        if missing:
            parts.append(f"missing keys: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise ModelMismatchError(f"{source} does not fit the network ({'; '.join(parts)})")
    model.load_state_dict(state)


def save_model(model: BinCountNet, config: ModelConfig, model_dir: str | Path) -> Path:
    """Write ``model.pth`` (state dict) and ``model_config.json`` into ``model_dir``."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    config.save(model_dir)
    path = model_dir / MODEL_FILE
    torch.save(model.state_dict(), path)
    return path


def empty_model(config: ModelConfig) -> BinCountNet:
    """The network with untrained weights (no download), to load a state dict into."""
    return BinCountNet(_features(None), build_head(config))


def load_model(model_dir: str | Path) -> BinCountNet:
    """Rebuild the network from an artifact directory (no download) and load its weights, in eval mode.

    Raises:
        FileNotFoundError: no ``model.pth`` in ``model_dir``.
        ModelMismatchError: the state dict does not fit the config (wrong class count, wrong head...).
    """
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir}: is this a bincount model artifact?")
    config = ModelConfig.load(model_dir)
    model = empty_model(config)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelMismatchError(f"{path} is not a readable PyTorch state dict: {e}") from e
    if not isinstance(state, Mapping):
        raise ModelMismatchError(f"{path} holds a {type(state).__name__}, not a state dict")
    load_state(model, state, source=str(path))
    return model.eval()
