"""Serving: the model server (``bincount serve``), request imaging and media limits, and the clients of the API
and the endpoint. Exports are lazy: ``media`` (mirrored by the Lambda's checks) stays import-light."""

from bincount.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ModelServer": "server",
        "decode_image": "imaging",
        "RequestError": "imaging",
        "MAX_PAYLOAD_BYTES": "media",
        "media_type": "media",
        "sniff": "media",
        "ApiClient": "client",
        "count_images": "client",
        "resolve_api": "client",
        "resolve_endpoint": "client",
    },
)
__all__ = __dir__()
