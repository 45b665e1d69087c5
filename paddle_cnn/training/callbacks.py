"""Callbacks for ``paddle.Model.fit``, one job each, in the shape of ``paddle.callbacks``.

``fit`` counts epochs from 0 and knows nothing of earlier runs; the run's own epoch is
``state.epoch + 1`` while an epoch trains. The callbacks here do per-step work (reseed, meter,
per-step schedule, VisualDL scalars, progress); what happens after an epoch (schedule, validate,
record, log, checkpoint, print) is one sequence, ``Trainer._end_of_epoch``, run by
:class:`AtEpochEnd`. Each gets only what it needs.
"""
from __future__ import annotations

import contextlib
import errno
import io
import math
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import paddle

from ..fileio import atomic_copy, crash_point, writing
from . import plots
from .parallel import mean_over_processes
from .rundir import EpochRow, RunState

VDL_FILE = "vdlrecords.run.log"  # one fixed name: VisualDL reads a single file per run folder


class RunLog:
    """VisualDL's LogWriter that does not lose records silently: VisualDL's writer thread catches a
    failed write (a full disk), prints a warning and drops every later record. Here the failure is
    kept and raised as an OSError naming the log at the next flush or close."""

    def __init__(self, logdir: Path):
        from visualdl import LogWriter

        self.path = logdir / VDL_FILE
        with writing(self.path), contextlib.redirect_stdout(io.StringIO()):  # it prints when it appends
            self._writer = LogWriter(logdir=str(logdir), file_name=VDL_FILE)
        self._failures: List[BaseException] = []
        # VisualDL 2.5: LogWriter -> RecordFileWriter -> _AsyncWriter -> RecordWriter.write, run on the
        # writer thread; the one place its errors can be seen.
        record = self._writer._get_file_writer()._async_writer._record_writer
        write = record.write

        def checked_write(data):
            try:
                return write(data)
            except BaseException as exc:
                self._failures.append(exc)
                raise

        record.write = checked_write

    def __getattr__(self, name):  # add_scalar, add_image, add_hparams, ...
        return getattr(self._writer, name)

    def _check(self) -> None:
        if self._failures:
            exc = self._failures[0]
            code = getattr(exc, "errno", None) or errno.EIO
            raise OSError(code, getattr(exc, "strerror", None) or str(exc), str(self.path))

    def flush(self) -> None:
        with writing(self.path):
            self._writer.flush()
        self._check()

    def close(self) -> None:
        with contextlib.redirect_stdout(io.StringIO()), writing(self.path):
            self._writer.close()
        self._check()


def open_log(logdir: Path) -> RunLog:
    """The run's VisualDL writer, appending to its one log file."""
    return RunLog(logdir)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed every RNG gets at the start of ``epoch``: resuming at any epoch draws the same numbers."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**31


class ReseedEachEpoch(paddle.callbacks.Callback):
    """Every RNG, and the loader's shuffle, from (seed, epoch): the RNG state to resume is two integers."""

    def __init__(self, seed: int, state: RunState, loader):
        super().__init__()
        self.seed, self.state, self.loader = seed, state, loader

    def on_epoch_begin(self, epoch, logs=None):
        run_epoch = self.state.epoch + 1
        seed_everything(epoch_seed(self.seed, run_epoch))
        self.loader.set_epoch(run_epoch)


class TrainMeter(paddle.callbacks.Callback):
    """Counts steps and averages the training loss of the global batch (mean over processes);
    stops training at the first non-finite loss, naming the step."""

    def __init__(self, state: RunState, optimizer, describe_latest: Callable[[], str]):
        super().__init__()
        self.state, self.optimizer, self.describe_latest = state, optimizer, describe_latest
        self.steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.loss_sum, self.seen, self.loss, self.acc = 0.0, 0, float("nan"), float("nan")
        self.steps = 0  # finished in this epoch
        self.lr = float(self.optimizer.get_lr())
        self.started = time.perf_counter()

    def on_train_batch_end(self, step, logs=None):
        # Each process reports its own share's loss and running accuracy (equal shares): their means
        # are the global batch's.
        loss, acc = mean_over_processes([float(logs["loss"][0]), float(logs["acc"])])
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at epoch {self.state.epoch + 1}, step {step + 1} (global step "
                f"{self.state.global_step + 1}); training stopped, {self.describe_latest()}")
        batch = int(logs.get("batch_size", 1))  # paddle.Model reports the global batch (local x processes)
        self.loss, self.acc = loss, acc
        self.loss_sum += loss * batch
        self.seen += batch
        self.state.global_step += 1
        self.steps = step + 1
        crash_point("step")

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


class StepSchedulePerStep(paddle.callbacks.Callback):
    """Steps a per-step LR schedule (one-cycle) after every batch; per-epoch schedules step in the
    trainer's end-of-epoch sequence."""

    def __init__(self, scheduler):
        super().__init__()
        self.scheduler = scheduler

    def on_train_batch_end(self, step, logs=None):
        self.scheduler.step()


class UpdateAverage(paddle.callbacks.Callback):
    """Updates the weights' moving average after every optimizer step. It counts its own updates from
    the run's global step at the start, so where it stands in the callback list does not matter."""

    def __init__(self, ema, state: RunState):
        super().__init__()
        self.ema, self.state = ema, state

    def on_train_begin(self, logs=None):
        self.updates = self.state.global_step

    def on_train_batch_end(self, step, logs=None):
        self.ema.update(self.updates)
        self.updates += 1


class AtEpochEnd(paddle.callbacks.Callback):
    """Calls ``work()`` after each epoch's last step: the trainer's end-of-epoch sequence, in one place."""

    def __init__(self, work: Callable[[], None]):
        super().__init__()
        self.work = work

    def on_epoch_end(self, epoch, logs=None):
        self.work()


def record_epoch(state: RunState, row: EpochRow) -> bool:
    """Append the epoch's row to the state and advance it; True when validation accuracy improved."""
    state.history.append(row)
    state.epoch = row.epoch
    improved = state.best_val_acc is None or row.val_acc > state.best_val_acc
    if improved:
        state.best_val_acc, state.best_epoch = row.val_acc, row.epoch
    return improved


# Per-step scalars reach VisualDL in groups of this many steps: one add_scalar per step from the
# training loop cost 0.2-0.5 ms a step on LeNet (VisualDL's writer thread takes the GIL for each
# record while the step runs), 4-10% of the step. VisualDL shows them as each group lands.
STEPS_PER_WRITE = 50


class VisualDLLog(paddle.callbacks.Callback):
    """Scalars per step and per epoch, the validation confusion matrix, sample inputs and hparams.

    On resume the log is cut back to its size at the checkpoint (records of an interrupted epoch
    are moved to ``vdl/interrupted/``), so the curve has no duplicate steps.
    """

    def __init__(self, logdir: Path, state: RunState, meter: TrainMeter,
                 class_names, first_images: Callable[[], np.ndarray], hparams: Dict):
        super().__init__()
        self.logdir, self.state, self.meter = logdir, state, meter
        self.class_names, self.first_images, self.hparams = class_names, first_images, hparams
        self.writer = None
        self.pending: List[tuple] = []  # (tag, value, step, walltime ms) not yet handed to the writer

    def on_train_begin(self, logs=None):
        log = self.logdir / VDL_FILE
        keep = self.state.vdl_log_bytes if self.state.epoch else 0
        if log.is_file() and log.stat().st_size > (keep or 0):
            atomic_copy(log, self.logdir / "interrupted" / f"vdlrecords.{int(time.time())}.log")
            with open(log, "rb+") as f:
                f.truncate(keep or 0)
        self.writer = open_log(self.logdir)
        if self.state.epoch == 0:
            sample = self.first_images()
            rgb = sample if sample.ndim == 3 else np.repeat(sample[:, :, None], 3, axis=2)
            self.writer.add_image("inputs/samples_by_class", rgb, 0)
            self.writer.add_hparams(hparams_for_visualdl(self.hparams), list(HPARAM_METRICS))

    def on_train_batch_end(self, step, logs=None):
        gs, wall = self.state.global_step, round(time.time() * 1000)
        self.pending += [("train/loss", self.meter.loss, gs, wall), ("train/acc_running", self.meter.acc, gs, wall)]
        if len(self.pending) >= 2 * STEPS_PER_WRITE:
            self.write_pending()

    def write_pending(self) -> None:
        """Hand the buffered per-step scalars (with the time each step ended) to VisualDL."""
        for tag, value, gs, wall in self.pending:
            self.writer.add_scalar(tag, value, gs, walltime=wall)
        self.pending.clear()

    def salvage(self) -> None:
        """After a failure (Ctrl-C, a non-finite loss): the steps that finished reach the log file."""
        if self.writer is not None and self.pending:
            try:
                self.write_pending()
                self.writer.flush()
            except Exception:  # noqa: BLE001 - best effort while another exception is on its way up
                pass

    def log_epoch(self, row: EpochRow, val: Dict) -> None:
        """The epoch's scalars and validation confusion matrix, flushed; records the log's size for the
        checkpoint that follows (a resume cuts the log back to it)."""
        self.write_pending()
        # Per-epoch values are logged at the global step too, so they overlay the per-step train curves.
        w, gs = self.writer, self.state.global_step
        w.add_scalar("val/loss", round(row.val_loss, 6), gs)
        w.add_scalar("val/acc", round(row.val_acc, 6), gs)
        w.add_scalar("train/epoch_loss", round(row.train_loss, 6), gs)
        w.add_scalar("lr", row.lr, gs)
        w.add_image("val/confusion", plots.confusion_image(val["confusion"], self.class_names,
                                                           f"validation, epoch {row.epoch}"), row.epoch)
        w.flush()
        self.state.vdl_log_bytes = (self.logdir / VDL_FILE).stat().st_size

    def on_train_end(self, logs=None):
        self.writer.close()


# The metrics VisualDL's hparams view shows per run: read from these scalar tags (test/* is written
# once the run is evaluated on the test set, by log_test_metrics).
HPARAM_METRICS = ("val/acc", "val/loss", "test/acc", "test/loss")


def hparams_for_visualdl(config: Dict) -> Dict:
    """VisualDL takes int, float and str only (a bool is refused as an int): the rest as text; floats
    to 6 significant digits so 3e-4 does not show as 0.00030000001."""
    out = {}
    for k, v in config.items():
        if isinstance(v, float):
            out[k] = float(f"{v:.6g}")
        elif isinstance(v, (int, str)) and not isinstance(v, bool):
            out[k] = v
        else:
            out[k] = str(v)
    return out


def log_test_metrics(logdir: Path, step: int, metrics: Dict) -> None:
    """Test loss and accuracy of the finished run, for the hparams view (appended to the run's log)."""
    writer = open_log(logdir)
    try:
        writer.add_scalar("test/acc", round(float(metrics["acc"]), 6), step)
        writer.add_scalar("test/loss", round(float(metrics["loss"]), 6), step)
    finally:
        writer.close()
