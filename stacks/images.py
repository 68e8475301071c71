"""AWS Deep Learning Container image URIs, resolved at synth time for the deployment region.

``sagemaker-core`` knows, offline, which account hosts each framework's images in each region; we ask it once per
synth. The CPU or GPU flavour follows the instance type, so change the instance-type settings (not only an
execution's input) when moving between CPU and GPU instances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bincount.cloud.settings import Settings, SettingsError
from stacks.permissions import Arns

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

    def arn(self, arns: Arns) -> str:
        """The ARN of the ECR repository that holds the image."""
        return arns.ecr_repository(self.account, self.region, self.repository)


@dataclass(frozen=True)
class ContainerImages:
    """AWS's images the pipeline runs: ``inference`` only with ``servingImage: prebuilt`` (else the stack builds
    the endpoint's image from ``inference/Dockerfile``), Debugger's rule image only with ``sagemakerDebugger``."""

    tuning: ImageRef
    training: ImageRef
    inference: ImageRef | None = None
    debugger_rules: ImageRef | None = None

    def all(self) -> tuple[ImageRef, ...]:
        images = (self.tuning, self.training, self.inference, self.debugger_rules)
        return tuple(image for image in images if image is not None)


def _retrieve(setting_key: str, **kwargs: str) -> ImageRef:
    """``image_uris.retrieve(**kwargs)``; a setting it rejects fails the synth naming ``setting_key``."""
    from sagemaker.core import image_uris

    try:
        return ImageRef.parse(image_uris.retrieve(**kwargs))
    except ValueError as e:
        raise SettingsError(f"setting '{setting_key}': no AWS container image for {kwargs}: {e}") from None


def resolve_images(settings: Settings) -> ContainerImages:
    """The PyTorch training images (per instance type), the prebuilt CPU inference image when asked for, and
    Debugger's rule image when the final job runs SageMaker Debugger."""

    def pytorch(scope: str, version_key: str, version: str, py_version: str, instance_type: str) -> ImageRef:
        return _retrieve(
            version_key,
            framework="pytorch",
            region=settings.region,
            version=version,
            py_version=py_version,
            instance_type=instance_type,
            image_scope=scope,
        )

    training_version, py = settings.framework_version, settings.py_version
    inference = None
    if settings.serving_image == "prebuilt":
        inference = pytorch(
            "inference",
            "inferenceFrameworkVersion",
            settings.inference_framework_version,
            settings.inference_py_version,
            settings.endpoint_instance_type,
        )
    return ContainerImages(
        tuning=pytorch("training", "frameworkVersion", training_version, py, settings.tuning_instance_type),
        training=pytorch("training", "frameworkVersion", training_version, py, settings.training_instance_type),
        inference=inference,
        debugger_rules=(
            _retrieve("region", framework="debugger", region=settings.region) if settings.sagemaker_debugger else None
        ),
    )
