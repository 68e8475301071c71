#!/usr/bin/env python3
"""The bincount CDK app (`npx cdk synth|deploy|destroy`). Settings: cdk.json "context"; see stacks/settings.py."""

import sys

from bincount.cloud.settings import SettingsError
from stacks.app_builder import build_app

if __name__ == "__main__":
    try:
        app, _ = build_app()
    except SettingsError as error:
        sys.exit(f"bincount: {error}")
    app.synth()
