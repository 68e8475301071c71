"""SageMaker Debugger (smdebug) hook: optional, so the scripts run the same without it.

On SageMaker the training job's DebugHookConfig is written to ``/opt/ml/input/config/debughookconfig.json``
(``SMDEBUG_CONFIG_FILE_PATH`` overrides the path) and :func:`create_hook` builds the hook from it. Without smdebug,
or without that file, there is no hook and every helper here is a no-op.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

log = logging.getLogger(__name__)


def create_hook(model: nn.Module, criterion: nn.Module) -> Any | None:
    """An smdebug hook registered on the model and the loss, or None when Debugger is not configured."""
    try:
        from smdebug.core import singleton_utils
        from smdebug.pytorch import Hook
    except Exception as e:  # ImportError, or smdebug failing on this numpy/torch
        log.info("smdebug not available (%s): training without the Debugger hook", e)
        return None
    try:
        # The singleton: reuses the hook of a zero-code container, else builds one from the job's config file.
        # (smdebug.pytorch.get_hook would also refuse torch versions newer than it knows; the hook works on them.)
        hook = singleton_utils.get_hook(json_config_path=None, hook_class=Hook, create_if_not_exists=True)
    except Exception as e:
        log.warning("smdebug could not create its hook (%s): training without it", e)
        return None
    if hook is None:
        log.info("no Debugger hook configuration: training without the Debugger hook")
        return None
    hook.register_module(model)
    hook.register_loss(criterion)
    log.info("Debugger hook registered (out_dir=%s)", getattr(hook, "out_dir", "?"))
    return hook


def set_mode(hook: Any | None, mode: str) -> None:
    """Tell the hook whether we are training or evaluating (mode is "train" or "eval")."""
    if hook is None:
        return
    import smdebug.pytorch as smd

    hook.set_mode(smd.modes.TRAIN if mode == "train" else smd.modes.EVAL)


def close(hook: Any | None) -> None:
    if hook is not None:
        hook.close()
