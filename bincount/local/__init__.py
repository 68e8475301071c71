"""The local twin: the pipeline, the local SageMaker endpoint, the local API Gateway, their HTTP server base and
the web page (``web/``)."""

from bincount.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "run_pipeline": "pipeline",
        "TwinSettings": "pipeline",
        "StepFailed": "pipeline",
        "Endpoint": "endpoint",
        "LocalSageMaker": "endpoint",
        "ContainerModel": "endpoint",
        "ServedModel": "endpoint",
        "LocalApi": "api",
        "load_handler": "api",
        "BackgroundServer": "http",
    },
)
__all__ = __dir__()
