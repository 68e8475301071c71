"""The one logging set-up, called by each entry point (the training scripts, the CLI, the local servers' mains).

Library code only logs (``logging.getLogger(__name__)``); it never configures handlers and never prints. The Lambda
(``lambda/``) is deployed alone and keeps its own JSON logger.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_bincount"


def setup_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Log records at ``level`` and above to ``stream`` (stderr by default) in one format; calling it again
    only changes the level.

    Training passes ``sys.stdout``: SageMaker ships stdout to CloudWatch, where the metric regexes read it.
    """
    root = logging.getLogger()
    if not any(getattr(h, _MARK, False) for h in root.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level)
