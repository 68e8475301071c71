"""SageMaker PyTorch inference handler (docs/design.md §4): a bin photo in, the object count out.

The AWS PyTorch inference container loads this module from the model artifact's ``code/`` (``SAGEMAKER_PROGRAM``)
and calls the four functions below. Client mistakes raise :class:`bincount.serving.imaging.RequestError`, a toolkit
error with a 4xx status; anything else becomes the toolkit's 500.

Runs in the endpoint image (``bincount serve``, torch 2.10) and in AWS's prebuilt PyTorch inference container (torch
2.6, py312): imports only torch, torchvision, Pillow, numpy and the ``bincount`` modules that
``bincount.model.artifact`` packs beside it. ``model_fn`` logs the path it serves once, as ``serving path: int8`` or
``serving path: fp32 (<why>)``.

Two paths, the same answers (tests/functional/serving/test_inference_fast.py checks them against each other on
real photos):

- fast (default): the evaluation transforms computed on 8-bit pixels in torch
  (:func:`bincount.data.transforms.eval_batch`, within one grey level of Pillow's), the int8 backbone that training
  quantised (``backbone_int8.pt``, see :mod:`bincount.model.quantize`) and the fp32 head, 2 intra-op threads at most.
- reference (``BINCOUNT_REFERENCE=1`` in the environment): the exact fp32 eager path of training's evaluation:
  the evaluation transforms and the fp32 network. Anyone can check the agreement with it.

Review (docs/design.md §11): ``model_fn`` reads the artifact's ``review.json`` (the temperature and confidence threshold
training chose on the validation set, :mod:`bincount.serving.review`); ``predict_fn`` answers calibrated probabilities
(``softmax(logits / temperature)``) and ``output_fn`` adds ``needs_review = confidence < threshold``. Without the
file: temperature 1 and threshold :data:`bincount.serving.review.DEFAULT_THRESHOLD`.

Both decode the same way (full JPEG decode, as training's ``load_rgb``): draft-mode decoding measured no faster on
ABID-sized photos and would make a JPEG and a PNG of the same pixels answer differently.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from bincount.data.labels import COUNTS
from bincount.data.transforms import IMAGE_SIZE, eval_batch, eval_transform
from bincount.model.network import BinCountNet, ModelMismatchError, load_model
from bincount.model.quantize import load_int8_backbone
from bincount.serving.imaging import NotAcceptableError, decode_image
from bincount.serving.media import JSON, media_type
from bincount.serving.review import ReviewPolicy

log = logging.getLogger(__name__)

ACCEPTED_RESPONSE_TYPES = frozenset({JSON, "application/*", "*/*", ""})
_transform = eval_transform()  # the evaluation transforms training used: the same code, built once
REFERENCE_ENV = "BINCOUNT_REFERENCE"
FAST_PATH = "int8"
MAX_THREADS = 2  # an ml.t2.medium has 2 vCPUs; more threads than cores only thrash


def reference_mode() -> bool:
    """True when ``BINCOUNT_REFERENCE`` asks for the exact fp32 eager path (read at each call)."""
    return os.environ.get(REFERENCE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ServingModel:
    """What :func:`model_fn` loaded: the network in eval mode, the path it serves (``int8`` or ``fp32 (<why>)``),
    which :func:`predict_fn` follows, and the review policy (temperature and threshold) :func:`output_fn` applies."""

    network: torch.nn.Module
    path: str
    review: ReviewPolicy = field(default_factory=ReviewPolicy)

    @property
    def fast(self) -> bool:
        """True on the int8 path: the 8-bit transforms and the int8 backbone."""
        return self.path == FAST_PATH


def model_fn(model_dir: str) -> ServingModel:
    """Rebuild the network from the artifact and load its weights, failing at load (not at the first request)
    when the artifact does not fit.

    Args:
        model_dir: the unpacked model artifact (``model.pth``, ``model_config.json``, ``code/``).

    Returns:
        The :class:`ServingModel`: the network in eval mode, its output width checked against the counts (on a CPU,
        the int8 backbone from ``backbone_int8.pt`` with the fp32 head, unless ``BINCOUNT_REFERENCE=1``, or that
        file is missing, was made from other weights or disagrees with fp32 on this CPU: then the fp32 network; on a
        GPU, the fp32 network), the path it serves and the artifact's review policy
        (:class:`bincount.serving.review.ReviewPolicy`).

    Raises:
        FileNotFoundError: no ``model.pth`` in ``model_dir``.
        ModelMismatchError: the state dict does not fit the network (wrong class count, wrong head...), or the
            network does not predict one score per count.
        ValueError: ``review.json`` is present but not valid.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(model_dir).to(device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(MAX_THREADS, torch.get_num_threads())))
    if reference_mode():
        path = f"fp32 (reference mode: {REFERENCE_ENV}=1)"
    elif device.type != "cpu":
        path = f"fp32 (on {device.type}: the int8 backbone is a CPU path)"
    else:
        quantized, why = load_int8_backbone(model_dir, model.backbone)
        if quantized is not None:
            model = BinCountNet(quantized, model.head).eval()
            path = FAST_PATH
        else:
            path = f"fp32 ({why})"
    with torch.inference_mode():  # one warm-up pass, which also checks the output width
        width = model(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE, device=device)).shape[-1]
    if width != len(COUNTS):
        raise ModelMismatchError(
            f"the model in {model_dir} predicts {width} classes: the endpoint serves counts {COUNTS[0]}..{COUNTS[-1]} "
            f"({len(COUNTS)} classes)"
        )
    review = ReviewPolicy.load(model_dir)
    log.info("model loaded from %s on %s; serving path: %s", model_dir, device, path)
    log.info(
        "review: temperature %.3f, needs_review below confidence %.3f (%s)",
        review.temperature,
        review.threshold,
        review.source,
    )
    return ServingModel(model, path, review)


def input_fn(body: bytes, content_type: str) -> Image.Image:
    """Decode the request body into an upright RGB image.

    Args:
        body: the raw request body (``image/jpeg``, ``image/png`` or ``application/x-image``).
        content_type: the request's Content-Type.

    Returns:
        The image in RGB mode, EXIF orientation applied.

    Raises:
        bincount.serving.imaging.RequestError: 415 for another content type, 413 for a body or image over the limits,
            400 for an empty body or bytes that are not a decodable JPEG or PNG. The message says which.
    """
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif isinstance(body, str):  # the toolkit decodes JSON and CSV bodies to text; they are refused by type
        body = body.encode("utf-8")
    return decode_image(body, content_type)


def predict_fn(data: Image.Image, model: ServingModel) -> torch.Tensor:
    """Calibrated class probabilities of one image, after the evaluation transforms of training (exactly those on the
    fp32 paths; on the int8 path, the same steps on 8-bit pixels, see :func:`bincount.data.transforms.eval_batch`).

    Args:
        data: the RGB image from :func:`input_fn`.
        model: what :func:`model_fn` loaded (its path chooses the transforms; reference mode is part of it).

    Returns:
        A CPU tensor of ``len(COUNTS)`` probabilities (index i is the count ``COUNTS[i]``), ``softmax(logits /
        temperature)``; its ``review`` attribute is the model's review policy, for :func:`output_fn`.
    """
    device = next(model.network.parameters()).device
    with torch.inference_mode():
        return probabilities(model.network(prepare(data, model).to(device)), model)[0]


def prepare(data: Image.Image, model: ServingModel) -> torch.Tensor:
    """The network's input for one image, ``(1, 3, IMAGE_SIZE, IMAGE_SIZE)``, on the CPU: the path ``model_fn``
    chose decides the transforms (reference mode included). ``bincount batch`` stacks these into batches."""
    return eval_batch(data) if model.fast else _transform(data).unsqueeze(0)


def probabilities(logits: torch.Tensor, model: ServingModel) -> list[torch.Tensor]:
    """Calibrated probabilities of a batch of logits: one CPU tensor per image, each carrying the model's review
    policy as its ``review`` attribute (``bincount batch`` runs whole batches through here)."""
    policy = model.review
    rows = list(torch.softmax(logits.float() / policy.temperature, dim=1).cpu())
    for row in rows:
        row.review = policy
    return rows


def output_fn(prediction: torch.Tensor | Sequence[float], accept: str = JSON) -> str:
    """The response JSON: ``{"count": 1..5, "confidence": p, "probabilities": {"1": p, ..., "5": p},
    "needs_review": bool}``.

    Args:
        prediction: the probabilities from :func:`predict_fn` (its ``review`` policy decides ``needs_review``; a
            plain tensor or list gets the default policy).
        accept: the request's Accept header; it must allow ``application/json``.

    Returns:
        The JSON text.

    Raises:
        NotAcceptableError: 406 when the client accepts no JSON.
    """
    accepted = {media_type(part) for part in (accept or "").split(",")}
    if not accepted & ACCEPTED_RESPONSE_TYPES:
        raise NotAcceptableError(f"Accept {accept!r} is not supported: this endpoint answers {JSON}")
    values = [float(p) for p in prediction]
    if len(values) != len(COUNTS):
        raise ValueError(f"expected {len(COUNTS)} probabilities, got {len(values)}")
    best = max(range(len(COUNTS)), key=values.__getitem__)
    policy = getattr(prediction, "review", None) or ReviewPolicy()
    return json.dumps(
        {
            "count": COUNTS[best],
            "confidence": values[best],
            "probabilities": {str(c): p for c, p in zip(COUNTS, values, strict=True)},
            "needs_review": policy.needs_review(values[best]),
        }
    )
