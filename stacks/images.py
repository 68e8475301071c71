"""AWS Deep Learning Container image URIs, resolved at synth time for the deployment region.

The SageMaker Python SDK knows, offline, which account hosts each framework's images in each region; we ask it once
per synth. The CPU or GPU flavour follows the instance type, so change the instance-type settings (not only an
execution's input) when moving between CPU and GPU instances.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from stacks.settings import Settings, SettingsError

_IMAGE_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>[^:@]+)"
)


@dataclass(frozen=True)
class ImageRef:
    """One container image: its URI and the ECR repository that holds it."""

    uri: str
    account: str
    region: str
    repository: str

    @classmethod
    def parse(cls, uri: str) -> ImageRef:
        match = _IMAGE_URI.match(uri)
        if match is None:
            raise ValueError(f"not an ECR image URI: {uri!r}")
        return cls(uri=uri, account=match["account"], region=match["region"], repository=match["repo"])


@dataclass(frozen=True)
class ContainerImages:
    """The images the pipeline runs (Debugger's rule image only with the setting ``sagemakerDebugger``)."""

    tuning: ImageRef
    training: ImageRef
    inference: ImageRef
    debugger_rules: ImageRef | None = None

    def all(self) -> tuple[ImageRef, ...]:
        images = (self.tuning, self.training, self.inference, self.debugger_rules)
        return tuple(image for image in images if image is not None)


def _retrieve(setting_key: str, **kwargs: str) -> ImageRef:
    """``image_uris.retrieve(**kwargs)``; a setting it rejects fails the synth naming ``setting_key``."""
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)  # it logs at INFO that no SDK config exists
    from sagemaker import image_uris

    try:
        return ImageRef.parse(image_uris.retrieve(**kwargs))
    except ValueError as e:
        raise SettingsError(f"setting '{setting_key}': no AWS container image for {kwargs}: {e}") from None


def resolve_images(settings: Settings) -> ContainerImages:
    """The PyTorch training images (per instance type), the CPU inference image, and Debugger's rule image when the
    final job runs SageMaker Debugger."""

    def pytorch(scope: str, version_key: str, version: str, instance_type: str) -> ImageRef:
        return _retrieve(
            version_key,
            framework="pytorch",
            region=settings.region,
            version=version,
            py_version=settings.py_version,
            instance_type=instance_type,
            image_scope=scope,
        )

    return ContainerImages(
        tuning=pytorch("training", "frameworkVersion", settings.framework_version, settings.tuning_instance_type),
        training=pytorch("training", "frameworkVersion", settings.framework_version, settings.training_instance_type),
        inference=pytorch(
            "inference",
            "inferenceFrameworkVersion",
            settings.inference_framework_version,
            settings.endpoint_instance_type,
        ),
        debugger_rules=(
            _retrieve("region", framework="debugger", region=settings.region) if settings.sagemaker_debugger else None
        ),
    )
