"""SageMaker PyTorch inference handler (DESIGN.md §4): a bin photo in, the object count out.

First cut; hardened (content types, limits, toolkit errors) by the serving work.
"""

from __future__ import annotations

import io
import json

import torch
from PIL import Image

from bincount.labels import COUNTS
from bincount.model import load_model
from bincount.transforms import eval_transform

JSON = "application/json"


def model_fn(model_dir: str) -> torch.nn.Module:
    return load_model(model_dir)


def input_fn(body: bytes, content_type: str) -> Image.Image:
    with Image.open(io.BytesIO(body)) as img:
        return img.convert("RGB")


def predict_fn(image: Image.Image, model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return torch.softmax(model(eval_transform()(image).unsqueeze(0)), dim=1)[0]


def output_fn(probabilities: torch.Tensor, accept: str = JSON) -> str:
    index = int(probabilities.argmax())
    return json.dumps(
        {
            "count": COUNTS[index],
            "confidence": float(probabilities[index]),
            "probabilities": {str(c): float(p) for c, p in zip(COUNTS, probabilities)},
        }
    )
