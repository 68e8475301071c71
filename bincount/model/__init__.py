"""The model: the network, its int8 backbone and the model artifact's ``code/`` packer (all need torch)."""

from bincount.model.network import (
    BinCountNet,
    ModelConfig,
    ModelMismatchError,
    PretrainedWeightsUnavailable,
    build_model,
    load_model,
    save_model,
)

__all__ = [
    "BinCountNet",
    "ModelConfig",
    "ModelMismatchError",
    "PretrainedWeightsUnavailable",
    "build_model",
    "load_model",
    "save_model",
]
