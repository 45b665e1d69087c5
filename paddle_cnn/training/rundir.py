"""The run folder and its typed state: one owner at a time, every file written atomically.

Its files and where they live are :class:`~paddle_cnn.training.layout.RunLayout`'s; a process
writes them only inside ``with run.owned():``, which holds the folder's ``flock`` (a second process
is refused in one line; the kernel drops the lock when its holder dies, so a killed run never
blocks its own resume).
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from ..contract import InputContract
from ..fileio import atomic_write_text, crash_point
from ..typed import SchemaError, from_dict
from . import checkpoint as ckpt
from .config import RunConfig
from .layout import RunDirError, RunLayout
from .lock import FolderLock

PathLike = Union[str, Path]
# Settings that may change when a run is resumed; anything else must match the saved config.
RESUMABLE_CHANGES = ("epochs", "log_every", "device", "threads", "keep_epochs", "data_dir", "train_csv", "test_csv",
                     "download")


@dataclass
class EpochRow:
    """One line of metrics.csv."""

    epoch: int
    train_loss: float  # mean over the epoch's batches, weighted by batch size (train mode)
    train_acc: float  # running accuracy over the epoch (train mode)
    val_loss: float  # whole validation set, eval mode
    val_acc: float
    lr: float  # at the epoch's start
    seconds: float
    images_per_s: float
    ema_val_acc: Optional[float] = None  # the weights' moving average on the validation set (runs with ema_decay)


@dataclass
class RunState:
    """Where a run stands; saved in every checkpoint's state.json and validated on load."""

    epoch: int = 0
    global_step: int = 0
    best_val_acc: Optional[float] = None
    best_epoch: Optional[int] = None
    history: List[EpochRow] = field(default_factory=list)
    vdl_log_bytes: Optional[int] = None  # size of the VisualDL log at this checkpoint (resume truncates to it)
    commands: List[str] = field(default_factory=list)  # every command that trained this run
    stopped_early: Optional[int] = None  # the epoch early stopping ended training at (early_stop_patience)
    init: Optional[Dict[str, Any]] = None  # where the first weights came from (warmstart.InitSource), if given


@dataclass
class CheckpointState:
    """state.json of a checkpoint folder: the run's state plus what is needed to rebuild and resume it."""

    format: str
    run: RunState
    config: Dict[str, Any]  # validated as a RunConfig by RunDir.read_checkpoint
    input: InputContract
    num_classes: int
    lr_scheduler: Optional[Dict[str, Any]]
    rng: Dict[str, Any]
    tensors: Dict[str, str]  # sha256 of each tensor file, checked before loading
    grad_scaler: Optional[Dict[str, Any]] = None  # AMP's loss scaling (scale, counters); None without AMP


@dataclass
class ResumePoint:
    """Where a resume continues, and what it found on the way there."""

    name: str  # 'latest', 'best' or 'epoch_N'
    folder: Path  # the verified folder (a moved-aside copy if a swap was cut short)
    state: CheckpointState
    damaged: Dict[str, str] = field(default_factory=dict)  # checkpoint name -> why it cannot be used
    latest_epoch: Optional[int] = None  # the epoch of an intact 'latest' older than this point

    @property
    def epoch(self) -> int:
        return self.state.run.epoch

    def describe(self) -> str:
        """One line for the user: which checkpoint, and why not 'latest' when it is another."""
        what = f"checkpoint '{self.name}' (epoch {self.epoch})"
        if self.name == "latest":
            return what
        if "latest" in self.damaged:
            why = f"damaged ({self.damaged['latest']})"
        elif self.latest_epoch is not None:
            why = f"behind it, at epoch {self.latest_epoch} (a process stopped before replacing it)"
        else:
            why = "missing"
        return f"{what}, the newest intact one: checkpoints/latest is {why}"


class RunDir:
    """One run folder. Only rank 0 of a data-parallel job writes (``writer=False`` elsewhere)."""

    def __init__(self, path: PathLike, *, writer: bool = True):
        self.files = RunLayout.at(path)
        self.path = self.files.root
        self.writer = writer
        self._lock = FolderLock(self.files.lock, self.path)
        self._depth = 0  # nesting of owned() blocks

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def checkpoints(self) -> Path:
        return self.files.checkpoints

    # -- checks that write nothing
    def check_new(self, overwrite: bool) -> None:
        """Refuse to start a new run here unless the folder is empty or ``overwrite`` is given.

        Only the writing rank checks: the others follow it, and by the time they look, their own rank 0
        may already hold the lock and have written the first files."""
        if not self.writer:
            return
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: is a file, not a run folder")
        if self.holds_files() and not overwrite:
            raise RunDirError(f"{self.path} already holds a run; pass --resume to continue it, --overwrite to "
                              "start again (the old run is moved aside), or choose another --out")
        self._refuse_if_held_elsewhere()

    def holds_files(self) -> bool:
        return self.path.is_dir() and any(p != self.files.lock for p in self.path.iterdir())

    def check_resume(self, config: RunConfig) -> Optional[ResumePoint]:
        """The saved config must agree with ``config`` (but for :data:`RESUMABLE_CHANGES`); returns
        :meth:`resume_point`, or None if the run died before its first checkpoint."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: is a file, not a run folder")
        if not self.files.config.is_file():
            raise RunDirError(f"{self.path}: cannot resume, no run folder here (config.json missing)")
        saved = RunConfig.load(self.files.config)
        diff = saved.differences(config, ignore=RESUMABLE_CHANGES)
        if saved.epochs != config.epochs and saved.schedule in ("cosine", "onecycle"):
            diff["epochs"] = (saved.epochs, config.epochs)  # the schedule's length depends on it
        if diff:
            lines = ", ".join(f"{k}: saved {a!r} vs given {b!r}" for k, (a, b) in diff.items())
            raise RunDirError(f"{self.path}: the command line disagrees with the run's config.json ({lines}); "
                              "resume with the saved settings or start a new run")
        self._refuse_if_held_elsewhere()
        return self.resume_point()

    def checkpoint_names(self) -> List[str]:
        """Every checkpoint folder name present (latest, best, epoch_N; a moved-aside copy counts)."""
        if not self.checkpoints.is_dir():
            return []
        names = {p.name.removeprefix(".").removesuffix(".old") for p in self.checkpoints.iterdir() if p.is_dir()}
        return sorted(n for n in names if n in ("latest", "best") or (n.startswith("epoch_") and n[6:].isdigit()))

    def resume_point(self) -> Optional["ResumePoint"]:
        """The checkpoint a resume continues from: the newest intact one among latest, best and every
        epoch_N (newest by epoch, 'latest' first among equals; intact means every tensor file has its
        recorded sha256). None only when the run holds no checkpoint folder at all: a missing or
        damaged 'latest' never means "start over" while an earlier epoch survives, and checkpoints
        that are all damaged are refused rather than trained over."""
        names = self.checkpoint_names()
        readable, damaged = [], {}
        for name in names:
            try:
                readable.append((name, self.read_checkpoint(name)))
            except ckpt.CheckpointError as exc:
                damaged[name] = str(exc)
        # Newest first; verify (hash) only until one is intact.
        readable.sort(key=lambda item: (item[1].run.epoch, item[0] == "latest"), reverse=True)
        for name, state in readable:
            try:
                folder = ckpt.verify(self.files.checkpoint(name))
            except ckpt.CheckpointError as exc:
                damaged[name] = str(exc)
                continue
            latest = next((s.run.epoch for n, s in readable if n == "latest" and n not in damaged), None)
            return ResumePoint(name, folder, state, damaged=dict(sorted(damaged.items())), latest_epoch=latest)
        if names:
            first = next(iter(sorted(damaged.items())))
            raise RunDirError(f"{self.checkpoints}: none of its {len(names)} checkpoints is intact (first: "
                              f"{first[1]}); refusing to train over them: move the folder aside, or start "
                              "again with --overwrite")
        return None

    def read_checkpoint(self, which: str = "latest") -> CheckpointState:
        """The typed state.json of ``checkpoints/{which}`` (best, latest or epoch_N)."""
        folder = self.files.checkpoint(which)
        raw = ckpt.read_state(folder)
        source = str(ckpt.resolve(folder) / ckpt.STATE_FILE)
        try:
            state = from_dict(CheckpointState, raw, source)
        except SchemaError as exc:
            raise ckpt.CheckpointError(str(exc)) from None
        RunConfig.from_dict(state.config, f"{source}: key 'config'")
        return state

    def checkpoint_folder(self, which: str) -> Path:
        return ckpt.resolve(self.files.checkpoint(which))

    # -- ownership
    @contextmanager
    def owned(self, overwrite: bool = False) -> Iterator["RunDir"]:
        """Hold the folder for this process for the block; a no-op on ranks that do not write.

        The outermost block takes it: moves an old run aside (``overwrite``), creates the folder,
        locks it and clears checkpoint writes a crash cut short; it releases the lock on exit.
        Callers enter it only after config, data and network have been checked, so a run that
        cannot start leaves the old one where it was. Blocks nest (train, then finish, in one).
        """
        if not self.writer:
            yield self
            return
        if self._depth == 0:
            if overwrite and self.holds_files():
                self._refuse_if_held_elsewhere()
                aside = self.path.with_name(f"{self.path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(self.path, aside)
                print(f"moved the previous run to {aside}", flush=True)
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        self._depth += 1
        try:
            if self._depth == 1:
                for leftover in self.checkpoints.glob(".tmp-*"):
                    shutil.rmtree(leftover)  # a checkpoint write that a crash cut short
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._lock.release()

    def set_aside(self, names) -> List[Path]:
        """Move damaged checkpoint folders to ``checkpoints/damaged-TIME/`` so that nothing the run
        writes next lands on them (they stay for the user to inspect)."""
        if not names or not self._writing():
            return []
        aside = self.checkpoints / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        moved = []
        for name in names:
            for src in (self.files.checkpoint(name), self.checkpoints / f".{name}.old"):
                if src.exists():
                    aside.mkdir(exist_ok=True)
                    os.replace(src, aside / src.name)
                    moved.append(aside / src.name)
        return moved

    def _refuse_if_held_elsewhere(self) -> None:
        if self.writer:
            self._lock.refuse_if_held_elsewhere()

    def _writing(self) -> bool:
        """Whether this process writes (rank 0); writing outside owned() is a bug, not a user error."""
        if self.writer and not self._lock.held:
            raise RuntimeError(f"{self}: written outside a 'with run.owned():' block")
        return self.writer

    # -- writing (rank 0 only; every method is a no-op elsewhere)
    def save_config(self, config: RunConfig) -> None:
        if self._writing():
            config.save(self.files.config)

    def save_checkpoint(self, net, optimizer, state: CheckpointState, *, best: bool, keep: int = 0,
                        ema=None) -> None:
        """epoch_N, latest (and best), each holding ``ema`` (the averaged net) too; then the average
        alone as ``checkpoints/ema``, a checkpoint like any other for evaluate, predict and export
        (a resume never starts from it: it continues from the trained weights and their average)."""
        if not self._writing():
            return
        data = asdict(state)
        data.pop("tensors")  # computed by the writer from the files it writes
        also = ("latest", "best") if best else ("latest",)
        ckpt.save_checkpoint(self.files.epoch_checkpoint(state.run.epoch), net, optimizer, data, also=also, ema=ema)
        if ema is not None:
            ckpt.save_checkpoint(self.files.checkpoint("ema"), ema, None, data)
        if keep:
            old = sorted((p for p in self.checkpoints.glob("epoch_*") if p.name[6:].isdigit()),
                         key=lambda p: int(p.name[6:]))
            for p in old[:-keep]:
                shutil.rmtree(p)

    def write_metrics(self, history: List[EpochRow]) -> None:
        if not self._writing():
            return
        columns = list(EpochRow.__dataclass_fields__)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns)
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in asdict(row).items()})
        atomic_write_text(self.files.metrics, buf.getvalue())
        crash_point("epoch-end")

    def write_results(self, results: Dict[str, Any]) -> None:
        if self._writing():
            atomic_write_text(self.files.results, json.dumps(results, indent=2) + "\n")

    def describe_latest(self) -> str:
        """Where the last good checkpoint is, or that there is none yet (for error messages)."""
        try:
            folder = ckpt.resolve(self.files.checkpoint("latest"))
            epoch = self.read_checkpoint("latest").run.epoch
        except ckpt.CheckpointError:
            return f"no checkpoint was written yet in {self.path}"
        return f"the last good checkpoint is {folder} (checkpoints/latest is epoch {epoch})"
