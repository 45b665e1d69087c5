"""Where each file of a run folder lives: one object, so no writer or reader spells a path itself.

A run folder holds everything about a run::

    config.json            the resolved RunConfig (data paths absolute, so it works from anywhere)
    checkpoints/epoch_N/   model.safetensors, optimizer.safetensors, state.json (one per epoch)
    checkpoints/latest/    the newest epoch;  checkpoints/best/  the best validation accuracy
    metrics.csv            one row per epoch
    vdl/                   VisualDL logs (one continuous curve across resumes)
    predictions/           logits and labels of the final model on val and test (.npz)
    curves.png, confusion_test.png, predictions_test.png, results.json
    export/                a Paddle Inference export (``paddle-cnn export``)
    .lock                  who trains here now (PID, host, command); empty when nobody does
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import UserError

PathLike = Union[str, Path]

# What an export folder (``paddle-cnn export``) records beside the model: its source, contract, parameters.
EXPORT_META = "paddle_cnn_export.json"


class RunDirError(UserError):
    """A run folder that is missing, in use, or holds something the command would otherwise destroy."""


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (nothing here touches the disk)."""

    root: Path

    @classmethod
    def at(cls, path: PathLike) -> "RunLayout":
        return cls(Path(path).expanduser().absolute())

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: str) -> Path:
        """``latest``, ``best`` or ``epoch_N``."""
        return self.checkpoints / name

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch}"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def vdl(self) -> Path:
        return self.root / "vdl"

    def predictions(self, split: str) -> Path:
        return self.root / "predictions" / f"{split}.npz"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def confusion(self) -> Path:
        return self.root / "confusion_test.png"

    @property
    def prediction_grid(self) -> Path:
        return self.root / "predictions_test.png"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"
