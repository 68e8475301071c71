"""Every kind of bad input, in one table, at both layers (issue 7): the API's Lambda driven with API Gateway REST
proxy events (the real handler and artifact behind it on a local SageMaker endpoint over loopback HTTP), and the
endpoint itself over HTTP (the sagemaker-runtime wire path, the real handler in AWS's serving toolkit).

Each case gets its documented status (docs/design.md §5; the endpoint's own refusals come back as ModelError with the
handler's 4xx as OriginalStatusCode, §4) and a JSON error saying what was wrong; right after it, a good photo is
still counted, so nothing broke the process. Odd but valid images (alpha, 16-bit, CMYK, grayscale, EXIF-rotated,
1x1) are counted, not refused.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bincount.local.api import load_lambda_module
from bincount.local.endpoint import LocalSageMaker
from bincount.serving.media import MAX_PAYLOAD_BYTES
from tests.support.serving import (
    ENDPOINT,
    encode,
    photo,
    photo_bytes,
    png_header_only,
    point_lambda_at,
    reset_clients,
    rest_event,
)

api = load_lambda_module("api")
ORIENTATION = 0x0112
# Orientation 6: the stored pixels must turn 90 degrees clockwise to be upright (a phone held sideways).
ROTATED_CW = 6


class LambdaContext:
    aws_request_id = "lambda-request-0001"
    function_name = "bincount-api"


# --- the inputs ------------------------------------------------------------------------------------------------


def upright() -> Image.Image:
    """A real photo cropped to multiples of 16, so JPEG blocks line up the same way after a quarter turn."""
    img = photo(5)
    return img.crop((0, 0, img.width // 16 * 16, img.height // 16 * 16))


def lossless_jpeg(img: Image.Image, **options: Any) -> bytes:
    return encode(img, "JPEG", quality=100, subsampling=0, **options)


def exif_rotated() -> bytes:
    """The upright photo stored turned a quarter counter-clockwise, with the EXIF tag that turns it back."""
    exif = Image.Exif()
    exif[ORIENTATION] = ROTATED_CW
    return lossless_jpeg(upright().transpose(Image.Transpose.ROTATE_90), exif=exif)


def with_alpha() -> bytes:
    img = photo(6).convert("RGBA")
    alpha = np.full((img.height, img.width), 255, np.uint8)
    alpha[: img.height // 4] = 0  # a transparent band
    img.putalpha(Image.fromarray(alpha))
    return encode(img, "PNG")


def sixteen_bit() -> bytes:
    gray = np.asarray(photo(7).convert("L"), dtype=np.uint16) * 257
    img = Image.fromarray(gray)
    assert img.mode.startswith("I;16")
    return encode(img, "PNG")


def cmyk() -> bytes:
    return encode(photo(8).convert("CMYK"), "JPEG", quality=90)


def grayscale() -> bytes:
    return encode(photo(8).convert("L"), "JPEG", quality=90)


def one_pixel() -> bytes:
    return encode(Image.new("RGB", (1, 1), (120, 80, 40)), "JPEG")


def gif() -> bytes:
    return encode(photo(9), "GIF")


TOO_LARGE = b"\xff\xd8\xff" + bytes(MAX_PAYLOAD_BYTES)  # over both the API's 4.5 MB and InvokeEndpoint's 6 MB
BOMB = png_header_only(30000, 30000)  # 900 million pixels declared in a few hundred bytes
# A valid 20000x2 strip: few pixels and bytes, but resizing its shorter side to 224 would make 224x2,240,000.
STRIP = encode(Image.new("RGB", (20000, 2), (120, 80, 40)), "PNG")


@dataclass(frozen=True)
class Case:
    """One bad (or odd) input and what each layer answers.

    ``api``: (status, fragment of "error"); ``endpoint``: (status, fragment of the handler's message) where the
    status is the model's original status inside a ModelError (424), or the service's own status when the service
    refuses before the model (413, 404, 405); None when the case does not exist at that layer.
    """

    body: bytes | str | None
    content_type: str | None = "image/jpeg"
    api: tuple[int, str] | None = None
    endpoint: tuple[int, str] | None = None
    method: str = "POST"
    path: str = "/count"
    base64_encoded: bool = True


OK = (200, "")
CASES: dict[str, Case] = {
    "empty-body": Case(b"", api=(400, "the request body is empty"), endpoint=(400, "the request body is empty")),
    "no-body": Case(None, api=(400, "the request body is empty"), endpoint=None),
    "not-an-image": Case(
        b"hello, world", api=(400, "not a JPEG or PNG image"), endpoint=(400, "not a JPEG or PNG image")
    ),
    "truncated-jpeg": Case(
        photo_bytes(2)[: len(photo_bytes(2)) // 2],
        api=(400, "JPEG image data is truncated or corrupt"),
        endpoint=(400, "JPEG image data is truncated or corrupt"),
    ),
    "corrupt-png-header": Case(
        b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png", api=(400, "header is corrupt"), endpoint=(400, "corrupt")
    ),
    "png-with-alpha": Case(with_alpha(), "image/png", api=OK, endpoint=OK),
    "16-bit-png": Case(sixteen_bit(), "image/png", api=OK, endpoint=OK),
    "cmyk-jpeg": Case(cmyk(), api=OK, endpoint=OK),
    "grayscale-jpeg": Case(grayscale(), api=OK, endpoint=OK),
    "exif-rotated": Case(exif_rotated(), api=OK, endpoint=OK),
    "1x1": Case(one_pixel(), api=OK, endpoint=OK),
    "gif-as-gif": Case(gif(), "image/gif", api=(415, "'image/gif' is not supported"), endpoint=(415, "'image/gif'")),
    "gif-as-png": Case(gif(), "image/png", api=(400, "not a JPEG or PNG image"), endpoint=(400, "not a JPEG or PNG")),
    "decompression-bomb": Case(BOMB, "image/png", api=(413, "pixels"), endpoint=(413, "pixels")),
    "strip-20000x2": Case(STRIP, "image/png", api=(400, "at most 20 times"), endpoint=(400, "at most 20 times")),
    "over-size-limit": Case(
        TOO_LARGE, api=(413, "the limit is 4,500,000 bytes"), endpoint=(413, "HTTP content length exceeded")
    ),
    "no-content-type": Case(
        photo_bytes(1), None, api=(415, "'(none)' is not supported"), endpoint=(415, "'(none)' is not supported")
    ),
    "wrong-content-type": Case(
        photo_bytes(1), "text/plain", api=(415, "'text/plain' is not supported"), endpoint=(415, "'text/plain'")
    ),
    "invalid-base64": Case("***not base64***", api=(400, "not valid base64"), endpoint=None),
    "json-as-json": Case(
        json.dumps({"image": base64.b64encode(photo_bytes(1)[:300]).decode()}).encode(),
        "application/json",
        api=(415, "'application/json' is not supported"),
        endpoint=(415, "'application/json' is not supported"),
    ),
    "json-as-jpeg": Case(b'{"image": "..."}', api=(400, "not a JPEG or PNG"), endpoint=(400, "not a JPEG or PNG")),
    "unknown-path": Case(
        photo_bytes(1), path="/counts", api=(404, "no route /counts"), endpoint=(404, "no route POST")
    ),
    "wrong-method": Case(
        None, None, method="PUT", api=(405, "PUT is not allowed on /count"), endpoint=(405, "PUT is not allowed")
    ),
    "get-count": Case(None, None, method="GET", api=(405, "GET is not allowed on /count"), endpoint=(404, "no route")),
}


# --- the two layers --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def aws(sagemaker: LocalSageMaker, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    point_lambda_at(api, sagemaker.url, monkeypatch)
    yield
    reset_clients(api)


def via_lambda(case: Case) -> tuple[int, dict[str, Any]]:
    """The Lambda's answer to the proxy event API Gateway sends for this request."""
    event = rest_event(
        case.body,
        case.content_type,
        method=case.method,
        path=case.path,
        base64_encoded=case.base64_encoded,
    )
    response = api.handler(event, LambdaContext())
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def via_endpoint(sagemaker: LocalSageMaker, case: Case) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of the request straight to the endpoint; a ModelError counts as its original status
    and its first message line."""
    path = f"/endpoints/{ENDPOINT}/invocations" if case.path == "/count" else f"/endpoints/{ENDPOINT}{case.path}"
    body = case.body.encode() if isinstance(case.body, str) else case.body
    headers = {"Accept": "application/json"}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    host, port = sagemaker.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)  # urllib would add a form Content-Type of its own
    try:
        conn.request(case.method, path, body=body or b"", headers=headers)
        response = conn.getresponse()
        status, payload = response.status, json.loads(response.read())
        error_type = response.headers.get("x-amzn-ErrorType")
    finally:
        conn.close()
    if status == 200:
        return status, payload
    if status == 424:
        assert error_type == "ModelError"
        first_line = payload["OriginalMessage"].splitlines()[0]  # the handler's message, then a traceback
        return payload["OriginalStatusCode"], {"error": first_line}
    return status, {"error": payload["message"]}


def assert_answer(status: int, body: dict[str, Any], expected: tuple[int, str]) -> None:
    expected_status, fragment = expected
    assert status == expected_status, body
    if expected_status == 200:
        assert body["count"] in range(1, 6)
        assert set(body["probabilities"]) == {"1", "2", "3", "4", "5"}
    else:
        assert isinstance(body["error"], str) and fragment in body["error"], body
        assert "Traceback" not in body["error"]


GOOD = Case(photo_bytes(3), api=OK, endpoint=OK)


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items() if c.api])
def test_the_api_answers_each_bad_input_and_keeps_serving(case: Case) -> None:
    assert_answer(*via_lambda(case), case.api)
    assert_answer(*via_lambda(GOOD), OK)


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items() if c.endpoint])
def test_the_endpoint_answers_each_bad_input_and_keeps_serving(sagemaker: LocalSageMaker, case: Case) -> None:
    assert_answer(*via_endpoint(sagemaker, case), case.endpoint)
    assert_answer(*via_endpoint(sagemaker, GOOD), OK)


def test_an_exif_rotated_photo_is_counted_as_the_upright_one(sagemaker: LocalSageMaker) -> None:
    """The sideways-stored JPEG with its orientation tag gets the answer of the same pixels stored upright (a
    lossless PNG of them turned by hand), and not the answer of the sideways pixels."""
    rotated = CASES["exif-rotated"].body
    with Image.open(io.BytesIO(rotated)) as stored:
        stored_pixels = stored.convert("RGB")
    upright_case = Case(encode(stored_pixels.transpose(Image.Transpose.ROTATE_270), "PNG"), "image/png")
    sideways_case = Case(encode(stored_pixels, "PNG"), "image/png")
    for layer in (via_lambda, lambda case: via_endpoint(sagemaker, case)):
        (status_up, answer_up), (status_rot, answer_rot) = layer(upright_case), layer(CASES["exif-rotated"])
        assert status_up == status_rot == 200
        assert answer_rot["count"] == answer_up["count"]
        assert answer_rot["probabilities"] == pytest.approx(answer_up["probabilities"], abs=1e-4)
        _, answer_sideways = layer(sideways_case)
        assert answer_sideways["probabilities"] != pytest.approx(answer_up["probabilities"], abs=1e-4)
