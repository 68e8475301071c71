"""Build the CDK app the way ``npx cdk synth`` does: settings from the context, cdk-nag on every synth."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_cdk import App

from bincount.cloud.settings import load_settings
from stacks.bincount_stack import BincountStack
from stacks.nag import enable_checks


def build_app(
    *,
    context: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    outdir: str | None = None,
) -> tuple[App, BincountStack]:
    """The app and its one stack.

    Args:
        context: CDK context; None reads what the CLI passes (cdk.json and ``-c`` values).
        environ: where region and account come from; None uses ``os.environ``.
        outdir: the cloud assembly folder; None lets the CLI decide (``cdk.out``).

    Raises:
        bincount.cloud.settings.SettingsError: a bad setting, by name.
    """
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    settings = load_settings(app.node.try_get_context, os.environ if environ is None else environ)
    stack = BincountStack(app, settings=settings)
    enable_checks(app)
    return app, stack
