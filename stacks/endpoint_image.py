"""The endpoint's container image: the project's own (default) or AWS's last prebuilt PyTorch inference image.

``servingImage: project`` builds ``inference/Dockerfile`` at ``cdk deploy`` (a Docker image asset: CDK builds it for
linux/amd64 on the deploying machine and pushes it to the bootstrap's ECR repository). Synthesis only stages the
build context, so ``npx cdk synth`` needs no Docker. ``servingImage: prebuilt`` uses AWS's PyTorch inference
container (``inferenceFrameworkVersion``) through AWS's serving toolkit, for users without Docker; the synth warns
that it is out of patch.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Annotations, IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from bincount import versions
from bincount.cloud.settings import Settings
from bincount.paths import PROJECT_ROOT
from stacks.images import ContainerImages
from stacks.permissions import Arns

DOCKERFILE = "inference/Dockerfile"
"""Relative to the build context, the repository root (``.dockerignore`` narrows it to what the image copies)."""
PREBUILT_WARNING_ID = "bincount:PrebuiltServingImage"


@dataclass(frozen=True)
class ServingImage:
    """The endpoint's image URI and the ECR repository its model pulls from."""

    uri: str
    repository_arn: str
    asset: ecr_assets.DockerImageAsset | None = None


def serving_image(scope: Construct, construct_id: str, *, settings: Settings, images: ContainerImages) -> ServingImage:
    """The image the pipeline's CreateModel runs, per ``servingImage``."""
    if settings.serving_image == "prebuilt":
        prebuilt = images.inference
        if prebuilt is None:
            raise ValueError("servingImage 'prebuilt' needs the prebuilt inference image resolved")
        Annotations.of(scope).add_warning_v2(
            PREBUILT_WARNING_ID,
            f"servingImage 'prebuilt': the endpoint runs AWS's PyTorch inference container "
            f"{settings.inference_framework_version} ({prebuilt.uri}), whose patches ended "
            f"{versions.PREBUILT_INFERENCE_END_OF_PATCH} (2.6); its torch differs from the tests' {versions.TORCH}. "
            f"The default, servingImage 'project', builds inference/Dockerfile at deploy (needs Docker or Finch).",
        )
        arn = Arns(scope, settings).ecr_repository(prebuilt.account, prebuilt.region, prebuilt.repository)
        return ServingImage(prebuilt.uri, arn)
    asset = ecr_assets.DockerImageAsset(
        scope,
        construct_id,
        directory=str(PROJECT_ROOT),
        file=DOCKERFILE,
        platform=ecr_assets.Platform.LINUX_AMD64,
        ignore_mode=IgnoreMode.DOCKER,  # .dockerignore at the root: the package and the handler only
        display_name="bincount endpoint image",
    )
    return ServingImage(asset.image_uri, asset.repository.repository_arn, asset)
