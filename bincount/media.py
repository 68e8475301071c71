"""What the serving path accepts: content types, magic bytes and size limits, in one place.

Import-light (standard library only), so the CLI clients and the endpoint handler share it; the handler's
``code/`` gets it too. The Lambda, deployed alone, keeps its own copy of the cheap checks; the tests keep the two in
step.
"""

from __future__ import annotations

JPEG = "image/jpeg"
PNG = "image/png"
X_IMAGE = "application/x-image"
JSON = "application/json"
CONTENT_TYPES: tuple[str, ...] = (JPEG, PNG, X_IMAGE)
"""What the endpoint accepts (DESIGN.md §4); ``application/x-image`` means "JPEG or PNG, look at the bytes"."""
API_CONTENT_TYPES: tuple[str, ...] = (JPEG, PNG)
"""What the API accepts (DESIGN.md §5)."""
API_BINARY_MEDIA_TYPES: tuple[str, ...] = (JPEG, PNG, X_IMAGE)
"""The REST API's binary media types: bodies of these types reach the Lambda base64-encoded, any other as text. The
stack sets them on the API and the local API applies them, so the Lambda sees the same events in both."""

# Magic bytes of the formats we decode -> (Pillow format name, content type).
SIGNATURES: dict[bytes, tuple[str, str]] = {
    b"\xff\xd8\xff": ("JPEG", JPEG),
    b"\x89PNG\r\n\x1a\n": ("PNG", PNG),
}

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
"""InvokeEndpoint's request limit (6 MB); the handler refuses larger bodies itself too."""
MAX_API_IMAGE_BYTES = 4_500_000
"""The API's limit: base64 grows a body by 4/3 and Lambda takes at most 6 MB per request, headers included."""
MAX_IMAGE_PIXELS = 50_000_000
"""Width x height beyond which an image is refused before it is decoded (decompression bombs)."""
MAX_ASPECT_RATIO = 20
"""Longer side / shorter side beyond which an image is refused before it is decoded: the transforms scale the shorter
side to 224, so a 20000x2 strip (a few hundred bytes of PNG) would become 224x2,240,000 (measured: 2.6 GB and 5 s)."""


def media_type(header: str | None) -> str:
    """The bare, lower-case media type of a Content-Type header: ``"Image/JPEG; q=1"`` -> ``"image/jpeg"``."""
    return (header or "").split(";", 1)[0].strip().lower()


def sniff(data: bytes) -> tuple[str, str] | None:
    """``(Pillow format, content type)`` of a JPEG or PNG from its first bytes; None for anything else."""
    for magic, kind in SIGNATURES.items():
        if data.startswith(magic):
            return kind
    return None
