"""Per-epoch checkpoints for managed spot training: save every epoch, resume at the next one.

SageMaker syncs ``/opt/ml/checkpoints`` with S3 and restores it when a spot job restarts. A checkpoint is a dict of
plain types and tensors (loadable with ``weights_only=True``) holding the model, the optimizer, the epoch, the best
epoch so far and the loss history. It is only resumed by a run with the same hyperparameters.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    valid_accuracy: list[float] = field(default_factory=list)


@dataclass
class TrainState:
    """Where training stands: the next epoch to run and the best epoch so far."""

    next_epoch: int = 0
    best_epoch: int = -1
    best_valid_loss: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    history: History = field(default_factory=History)

    def remember_best(self, model: nn.Module, epoch: int, valid_loss: float) -> None:
        self.best_epoch, self.best_valid_loss = epoch, valid_loss
        self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


class Checkpointer:
    """Saves and restores :class:`TrainState` with the model and optimizer in one file."""

    def __init__(self, directory: str | Path | None, fingerprint: dict[str, object]) -> None:
        self.directory = Path(directory) if directory else None
        self.fingerprint = fingerprint

    @property
    def path(self) -> Path | None:
        return self.directory / CHECKPOINT_FILE if self.directory else None

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, state: TrainState) -> None:
        """Write the checkpoint after ``epoch`` atomically (a temp file, then a rename)."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            log.warning("cannot create checkpoint folder %s (%s): not checkpointing", self.directory, e)
            self.directory = None
            return
        payload = {
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "best_epoch": state.best_epoch,
            "best_valid_loss": state.best_valid_loss,
            "best_state": state.best_state,
            "history": asdict(state.history),
        }
        tmp = self.path.with_suffix(".tmp")
        torch.save(payload, tmp)
        tmp.replace(self.path)
        log.info("checkpoint for epoch %d saved to %s", epoch + 1, self.path)

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
        """Load the checkpoint into model and optimizer when there is a matching one; else a fresh state."""
        if self.path is None or not self.path.is_file():
            return TrainState()
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:
            log.warning("ignoring unreadable checkpoint %s (%s): starting from scratch", self.path, e)
            return TrainState()
        if payload.get("fingerprint") != self.fingerprint:
            log.warning(
                "ignoring checkpoint %s: it was written with other settings (%s, now %s); starting from scratch",
                self.path,
                payload.get("fingerprint"),
                self.fingerprint,
            )
            return TrainState()
        try:
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
        except (KeyError, RuntimeError, ValueError) as e:
            log.warning("ignoring checkpoint %s: it does not fit this model (%s); starting from scratch", self.path, e)
            return TrainState()
        epoch = int(payload["epoch"])
        log.info("resuming from checkpoint %s: epoch %d done, continuing at epoch %d", self.path, epoch + 1, epoch + 2)
        return TrainState(
            next_epoch=epoch + 1,
            best_epoch=int(payload["best_epoch"]),
            best_valid_loss=float(payload["best_valid_loss"]),
            best_state=payload["best_state"],
            history=History(**payload["history"]),
        )
