"""The endpoint's fast path: the frozen ResNet-50 backbone quantised to int8, calibrated on real training photos.

Training quantises the backbone once (:func:`save_int8_backbone`: post-training static quantisation, per-channel
int8 weights, x86/fbgemm kernels), traces and freezes it, and stores it as TorchScript beside ``model.pth``; the
training and inference containers run the same torch (2.1). The endpoint loads it in well under a second, with no
calibration pass. The head is not quantised: it is tiny, and trained; it comes from ``model.pth``.

Uses ``torch.ao.quantization``'s FX API, which exists in the inference container's torch 2.1 and in current torch
(deprecated there in favour of torchao's pt2e path, which torch 2.1 does not have). Packed into the model artifact's
``code/``: imports only torch, torchvision and the ``bincount`` model.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from bincount.model import _features
from bincount.transforms import IMAGE_SIZE

log = logging.getLogger(__name__)

INT8_FILE = "backbone_int8.pt"
INT8_META = "backbone_int8.json"
ENGINE = "x86"  # fbgemm + onednn on x86 CPUs; exists since torch 1.13
CALIBRATION_IMAGES = 8


def _fx() -> tuple[object, object, object]:
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
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is in maintenance in current torch; it is what 2.1 has
        frozen = torch.jit.freeze(torch.jit.trace(quantized, example).eval())
    path = Path(model_dir) / INT8_FILE
    torch.jit.save(frozen, str(path))
    meta = {
        "engine": ENGINE,
        "calibration_images": len(calibration),
        "calibration_source": source,
        "torch": torch.__version__,
        "backbone_fingerprint": fingerprint(backbone),
    }
    (Path(model_dir) / INT8_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info(
        "int8 backbone for the endpoint written to %s (calibrated on %d %s photos)", path, len(calibration), source
    )
    return path


def fingerprint(backbone: nn.Module) -> float:
    """A cheap checksum of the fp32 backbone's weights, to tell that an int8 file was made from this backbone."""
    with torch.no_grad():
        return float(sum(float(p.double().abs().sum()) for p in backbone.parameters()))


def load_int8_backbone(model_dir: str | Path, backbone: nn.Module) -> nn.Module | None:
    """The int8 version of ``backbone`` stored in ``model_dir``, or None (with a warning) when there is none, it was
    made from other weights, or it does not load here: the caller then serves the fp32 backbone, slower but with
    the same answers."""
    path = Path(model_dir) / INT8_FILE
    if not path.is_file():
        log.warning("no %s in %s: serving the fp32 backbone", INT8_FILE, model_dir)
        return None
    if ENGINE not in torch.backends.quantized.supported_engines:
        log.warning("this CPU/torch has no %r quantised engine: serving the fp32 backbone", ENGINE)
        return None
    try:
        meta = json.loads((Path(model_dir) / INT8_META).read_text(encoding="utf-8"))
        expected, actual = float(meta["backbone_fingerprint"]), fingerprint(backbone)
        if abs(expected - actual) > 1e-7 * max(1.0, abs(actual)):
            log.warning("%s was made from other backbone weights than model.pth: serving the fp32 backbone", path)
            return None
        torch.backends.quantized.engine = ENGINE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:  # unreadable here: correct answers beat fast ones
        log.warning("could not load the int8 backbone %s (%s): serving the fp32 backbone", path, e)
        return None
