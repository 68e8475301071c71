"""Constructs and synth-time lookups on their own: what the default settings do not exercise."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from bincount.cloud.settings import SettingsError, load_settings
from stacks.images import ImageRef, resolve_images
from stacks.notifications import PipelineNotifications


def test_notification_email_is_subscribed() -> None:
    stack = Stack(App(), "Probe")
    PipelineNotifications(stack, "Notifications", email="ops@example.com")
    Template.from_stack(stack).has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


def test_images_follow_the_region_and_the_instance_family() -> None:
    settings = load_settings({"trainingInstanceType": "ml.g4dn.xlarge"}.get, {"CDK_DEFAULT_REGION": "eu-west-1"})
    images = resolve_images(settings)
    assert images.training.uri == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.10-gpu-py313"
    assert images.tuning.uri == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.10-cpu-py313"
    assert images.inference is None  # the project builds the endpoint's image (servingImage: project)
    assert images.debugger_rules is None, "Debugger's rule image only with sagemakerDebugger"
    assert images.training.repository == "pytorch-training" and images.training.account == "763104351884"


def test_the_prebuilt_serving_image_is_the_last_pytorch_inference_container() -> None:
    settings = load_settings({"servingImage": "prebuilt"}.get, {"CDK_DEFAULT_REGION": "eu-west-1"})
    images = resolve_images(settings)
    assert images.inference is not None
    assert images.inference.uri == "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference:2.6-cpu-py312"


def test_debugger_rule_image_follows_the_region_when_debugger_is_on() -> None:
    context = {"sagemakerDebugger": True, "frameworkVersion": "2.1", "pyVersion": "py310"}
    images = resolve_images(load_settings(context.get, {"CDK_DEFAULT_REGION": "eu-west-1"}))
    assert images.debugger_rules is not None and images.debugger_rules.region == "eu-west-1"
    assert images.debugger_rules.repository == "sagemaker-debugger-rules"
    assert images.debugger_rules in images.all()


def test_an_unknown_framework_version_fails_naming_the_setting() -> None:
    settings = load_settings({"frameworkVersion": "0.1"}.get, {})
    with pytest.raises(SettingsError, match="setting 'frameworkVersion'"):
        resolve_images(settings)


def test_image_uri_parsing() -> None:
    ref = ImageRef.parse("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch-inference:2.1-cpu-py310")
    assert (ref.account, ref.region, ref.repository) == ("727897471807", "cn-north-1", "pytorch-inference")
    with pytest.raises(ValueError, match="not an ECR image URI"):
        ImageRef.parse("python:3.11")
