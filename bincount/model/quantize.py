"""The endpoint's fast path: the frozen ResNet-50 backbone quantised to int8, calibrated on real training photos.

Training quantises the backbone once (:func:`save_int8_backbone`: post-training static quantisation, per-channel
int8 weights), traces and freezes it, and stores it as TorchScript beside ``model.pth``; the training and inference
containers run the same torch (2.1). The endpoint loads it in well under a second, with no calibration pass. The
head is not quantised: it is tiny, and trained; it comes from ``model.pth``.

Engine: oneDNN, with its default qconfig (8-bit activations, per-channel int8 weights). On this 2-core AVX2 machine
at batch 1, traced and frozen, it measured 5-15% faster than fbgemm (what the ``x86`` engine picks), and its
features agreed better with fp32 than with 7-bit activations (median cosine 0.9998 against 0.9994). torch warns that
8-bit activations may lose accuracy on CPUs without VNNI (an ml.t2.medium's has none, nor has this machine's), so
the endpoint checks the int8 backbone on the CPU it serves from before using it: a few calibration photos and their
fp32 features are stored beside it (``backbone_int8_check.pt``), and the endpoint serves fp32 unless every int8
feature vector agrees (:data:`MIN_CHECK_COSINE`).

Uses ``torch.ao.quantization``'s FX API, which exists in the inference container's torch 2.1 and in current torch
(deprecated there in favour of torchao's pt2e path, which torch 2.1 does not have). Packed into the model artifact's
``code/``: imports only torch, torchvision and the ``bincount`` model.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bincount.data.transforms import IMAGE_SIZE
from bincount.model.network import _features, backbone_fingerprint

log = logging.getLogger(__name__)

INT8_FILE = "backbone_int8.pt"
INT8_META = "backbone_int8.json"
INT8_CHECK = "backbone_int8_check.pt"
ENGINE = "onednn"  # exists in x86 builds of torch since 1.13
CALIBRATION_IMAGES = 8
CHECK_IMAGES = 4
MIN_CHECK_COSINE = 0.99
"""Measured here: 0.996 or more on every photo; int8 that saturates or packs weights wrongly falls far below."""


def _fx() -> tuple[Any, Any, Any]:
    with warnings.catch_warnings():  # the FX API warns that it is deprecated (torch >= 2.10)
        warnings.simplefilter("ignore")
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    return get_default_qconfig_mapping, prepare_fx, convert_fx


def _prepare(backbone: nn.Module) -> nn.Module:
    get_mapping, prepare_fx, _ = _fx()
    torch.backends.quantized.engine = ENGINE
    example = (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_fx(backbone.eval(), get_mapping(ENGINE), example)


def _convert(prepared: nn.Module) -> nn.Module:
    _, _, convert_fx = _fx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared).eval()


def quantize_backbone(backbone: nn.Module, calibration: torch.Tensor) -> nn.Module:
    """An int8 copy of a (fp32, eval-mode) backbone, its activation ranges observed on ``calibration`` images
    (a batch of eval-transformed photos); the backbone itself is left untouched."""
    copy = _features(None)
    copy.load_state_dict(backbone.state_dict())
    prepared = _prepare(copy)
    with torch.inference_mode():
        for batch in calibration.split(4):
            prepared(batch)
    return _convert(prepared)


def save_int8_backbone(backbone: nn.Module, calibration: torch.Tensor, model_dir: str | Path, *, source: str) -> Path:
    """Quantise ``backbone`` on ``calibration``, trace and freeze it, and write it to ``model_dir`` as TorchScript
    (``backbone_int8.pt``, loaded in well under a second), with a note of how it was made."""
    quantized = quantize_backbone(backbone.cpu(), calibration.cpu())
    example = calibration[:1].cpu()
    torch.backends.quantized.engine = ENGINE  # the trace prepacks the weights for this engine
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is in maintenance in current torch; it is what 2.1 has
        frozen = torch.jit.freeze(torch.jit.trace(quantized, example).eval())
    path = Path(model_dir) / INT8_FILE
    torch.jit.save(frozen, str(path))
    check = _check_set(backbone.cpu(), calibration[:CHECK_IMAGES].cpu())
    torch.save(check, Path(model_dir) / INT8_CHECK)
    meta = {
        "engine": ENGINE,
        "calibration_images": len(calibration),
        "calibration_source": source,
        "torch": torch.__version__,
        "backbone_fingerprint": backbone_fingerprint(backbone),
        "check_cosine_min": agreement(frozen, check),
    }
    (Path(model_dir) / INT8_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info(
        "int8 backbone for the endpoint written to %s (calibrated on %d %s photos)", path, len(calibration), source
    )
    return path


def _check_set(backbone: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """A few photos (half precision: 300 KB each) and the fp32 backbone's features of exactly those pixels."""
    inputs = images.half()
    training = backbone.training
    with torch.inference_mode():
        features = backbone.eval()(inputs.float())
    backbone.train(training)
    return {"inputs": inputs, "features": features}


def agreement(quantized: nn.Module, check: dict[str, torch.Tensor]) -> float:
    """The lowest cosine similarity between the int8 and the stored fp32 features over the check photos."""
    with torch.inference_mode():
        features = quantized(check["inputs"].float())
    return float(torch.cosine_similarity(features, check["features"], dim=1).min())


def load_int8_backbone(model_dir: str | Path, backbone: nn.Module) -> tuple[nn.Module | None, str]:
    """The int8 version of ``backbone`` stored in ``model_dir``, checked on this CPU against the fp32 features of
    the stored check photos, and ``""``; or None and the reason (also logged as a warning) when there is none, it was
    made from other weights, it does not load here or it disagrees: the caller then serves the fp32 backbone, slower
    but with the exact answers."""
    path = Path(model_dir) / INT8_FILE
    try:
        if not path.is_file():
            raise _Unusable(f"no {INT8_FILE} in the artifact")
        meta = json.loads((Path(model_dir) / INT8_META).read_text(encoding="utf-8"))
        if meta.get("backbone_fingerprint") != backbone_fingerprint(backbone):
            raise _Unusable(f"{INT8_FILE} was made from other backbone weights than model.pth")
        engine = str(meta.get("engine", ENGINE))  # the weights were packed for this engine
        if engine not in torch.backends.quantized.supported_engines:
            raise _Unusable(f"this CPU/torch has no {engine!r} quantised engine")
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantized = torch.jit.load(str(path), map_location="cpu").eval()
        check = torch.load(Path(model_dir) / INT8_CHECK, map_location="cpu", weights_only=True)
        cosine = agreement(quantized, check)  # also the warm-up: oneDNN builds its kernels on the first pass
        if cosine < MIN_CHECK_COSINE:
            raise _Unusable(
                f"the int8 backbone disagrees with fp32 on this CPU (feature cosine {cosine:.4f} < "
                f"{MIN_CHECK_COSINE:.2f} on the stored check photos)"
            )
    except _Unusable as e:
        reason = str(e)
    except Exception as e:  # unreadable here: correct answers beat fast ones
        reason = f"could not load the int8 backbone {path} ({type(e).__name__}: {e})"
    else:
        log.info("int8 backbone checked on this CPU: feature cosine %.4f or more against fp32", cosine)
        return quantized, ""
    log.warning("%s: serving the fp32 backbone", reason)
    return None, reason


class _Unusable(Exception):
    """The stored int8 backbone cannot be served here; the message says why."""
