"""Decoding request images for the endpoint, refusing bad input before and while decoding.

Packed into the model artifact's ``code/`` (the handler imports it), so it needs only Pillow and numpy, and runs
on the inference container's Python 3.10. What is accepted and the limits are in :mod:`bincount.serving.media`.

Every refusal is a :class:`RequestError` naming what was wrong. It subclasses the serving toolkit's own error type
(when the toolkit is importable), so inside the container the client gets its 4xx status and this message, not a
500 with a traceback (docs/design.md §4).
"""

from __future__ import annotations

import io
import logging
import struct
from http import HTTPStatus

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bincount.serving.media import (
    CONTENT_TYPES,
    MAX_ASPECT_RATIO,
    MAX_IMAGE_PIXELS,
    MAX_PAYLOAD_BYTES,
    media_type,
    sniff,
)

try:
    from sagemaker_inference.errors import BaseInferenceToolkitError
except ImportError:  # not in the container: the same shape, so callers can read status_code and message

    class BaseInferenceToolkitError(Exception):  # type: ignore[no-redef]
        """Stand-in for ``sagemaker_inference.errors.BaseInferenceToolkitError``."""

        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            self.status_code = status_code
            self.message = message
            self.phrase = phrase
            super().__init__(status_code, message, phrase)


log = logging.getLogger(__name__)

ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
BACKGROUND = (255, 255, 255)
"""Transparent pixels are flattened onto white, as a photo viewer shows them."""
# What a malformed EXIF block can raise from Pillow; the photo is then used as stored.
_EXIF_ERRORS = (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error)


class RequestError(BaseInferenceToolkitError):
    """A client mistake, answered with :attr:`status` and the message (the toolkit sends both to the client)."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(int(self.status), message, self.status.phrase)

    def __str__(self) -> str:
        return self.message


class BadImageError(RequestError):
    """400: the body is empty, not a JPEG/PNG image, or a corrupt one."""


class ImageTooLargeError(RequestError):
    """413: the body or the image's pixel count is over the limit."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaTypeError(RequestError):
    """415: the Content-Type is not one the endpoint accepts."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class NotAcceptableError(RequestError):
    """406: the client asked for a response type other than JSON."""

    status = HTTPStatus.NOT_ACCEPTABLE


def check_body(body: bytes, content_type: str | None, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> str:
    """The cheap checks, before any decoding: type, emptiness, size, magic bytes.

    Returns:
        The Pillow format name of the body (``"JPEG"`` or ``"PNG"``).

    Raises:
        UnsupportedMediaTypeError, BadImageError, ImageTooLargeError.
    """
    kind = media_type(content_type)
    if kind not in CONTENT_TYPES:
        raise UnsupportedMediaTypeError(
            f"Content-Type {kind or '(none)'!r} is not supported: send {', '.join(CONTENT_TYPES)}"
        )
    if not body:
        raise BadImageError("the request body is empty: send the image bytes")
    if len(body) > max_bytes:
        raise ImageTooLargeError(f"the body is {len(body):,} bytes: the limit is {max_bytes:,} bytes")
    found = sniff(body)
    if found is None:
        raise BadImageError(f"the body is not a JPEG or PNG image (Content-Type {kind}, {len(body):,} bytes)")
    return found[0]


def upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (a phone photo shot sideways comes out upright)."""
    try:
        return ImageOps.exif_transpose(img)
    except _EXIF_ERRORS as e:
        log.warning("ignoring an unreadable EXIF orientation: %s", e)
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: grayscale and palette expanded, CMYK converted, 16-bit scaled down, and
    transparency flattened onto white (plain ``convert("RGB")`` would show what lies under it, often black)."""
    if img.mode == "I" or img.mode.startswith("I;16"):  # 16-bit grayscale PNG: convert() would clip at 255
        img = Image.fromarray((np.asarray(img).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8))
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba).convert("RGB")
    return img.convert("RGB")


def decode_image(
    body: bytes,
    content_type: str | None,
    *,
    max_bytes: int = MAX_PAYLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Image.Image:
    """A request body as an upright RGB image, or a :class:`RequestError` naming what was wrong.

    The pixel count is checked from the header, before the pixels are decoded.

    Args:
        body: the raw request body.
        content_type: its Content-Type header (parameters are ignored).
        max_bytes: the largest body accepted.
        max_pixels: the largest width x height accepted.

    Returns:
        The decoded image in RGB mode.

    Raises:
        UnsupportedMediaTypeError: the content type is not an image type the endpoint accepts.
        BadImageError: the body is empty, not a JPEG or PNG, corrupt/truncated, or a strip (one side more than
            :data:`~bincount.serving.media.MAX_ASPECT_RATIO` times the other).
        ImageTooLargeError: the body or the image is over its limit.
    """
    fmt = check_body(body, content_type, max_bytes=max_bytes)
    try:
        img = Image.open(io.BytesIO(body), formats=[fmt])  # reads the header only
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"the {fmt} image has too many pixels: the limit is {max_pixels:,}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadImageError(f"the body starts like a {fmt} image but its header is corrupt") from e
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"the {fmt} image is {width}x{height} = {width * height:,} pixels: the limit is {max_pixels:,}"
            )
        if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
            raise BadImageError(
                f"the {fmt} image is {width}x{height}: a bin photo's longer side may be at most {MAX_ASPECT_RATIO} "
                "times its shorter side"
            )
        try:
            img.load()
        except (OSError, SyntaxError, ValueError, struct.error) as e:
            raise BadImageError(f"the {fmt} image data is truncated or corrupt ({width}x{height})") from e
        return to_rgb(upright(img))
