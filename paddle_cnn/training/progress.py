"""What a person watching a run sees: a live bar with ETA on a terminal, plain lines elsewhere.

A :class:`Job` is the whole experiment (one or several nets): it knows each net's remaining
epochs and its cost per epoch, so it can say "net 2/5" and estimate when the experiment ends
from the seconds measured so far. :class:`ShowProgress` is the ``paddle.Model.fit`` callback.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional, TextIO

import paddle

from .rundir import RunState

PROGRESS_ENV = "PADDLE_CNN_PROGRESS"  # "bar" or "plain" forces a style; unset: bar on a terminal
LINE_WIDTH = 120


def use_bar(stream: TextIO) -> bool:
    forced = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if forced in ("bar", "plain"):
        return forced == "bar"
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def duration(seconds: Optional[float]) -> str:
    """12s, 4m05s, 1h02m, 5d; '?' until something was measured."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 100 * 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d"


@dataclass
class _Part:
    name: str
    epochs: int  # epochs this job still has to train for the net
    cost: float  # relative cost of one epoch (e.g. FLOPs per image); only ratios between nets matter
    done: float = 0.0  # epochs trained in this job


@dataclass
class Job:
    """The nets an experiment will train, in order, for its position ("net 2/5") and its ETA.

    The ETA assumes seconds per unit of cost stay what they were so far in this job; with one
    net that is the usual rate-based estimate, across nets it scales by each net's cost.
    """

    parts: List[_Part] = field(default_factory=list)
    index: int = -1
    started: Optional[float] = None

    @classmethod
    def single(cls, name: str, epochs: int) -> "Job":
        return cls([_Part(name, epochs, 1.0)])

    def add(self, name: str, epochs: int, cost: float = 1.0) -> None:
        self.parts.append(_Part(name, max(int(epochs), 0), max(float(cost), 1e-12)))

    def begin(self, name: str, epochs_left: int) -> None:
        """A net starts training (its resumed epochs are not this job's work)."""
        names = [p.name for p in self.parts]
        start = self.index + 1
        if name in names[start:]:
            self.index = names.index(name, start)
        else:  # not planned: appended, costed like the average so far
            self.add(name, epochs_left, sum(p.cost for p in self.parts) / max(len(self.parts), 1) or 1.0)
            self.index = len(self.parts) - 1
        self.parts[self.index].epochs = epochs_left
        if self.started is None:
            self.started = time.perf_counter()

    def advance(self, epochs: float) -> None:
        if 0 <= self.index < len(self.parts):
            self.parts[self.index].done = epochs

    @property
    def position(self) -> str:
        n = len(self.parts)
        return f"net {self.index + 1}/{n} " if n > 1 else ""

    def eta(self) -> Optional[float]:
        if self.started is None:
            return None
        done = sum(p.done * p.cost for p in self.parts)
        if done <= 0:
            return None
        left = sum(max(p.epochs - p.done, 0) * p.cost for p in self.parts)
        return (time.perf_counter() - self.started) / done * left


class ShowProgress(paddle.callbacks.Callback):
    """A tqdm bar per epoch (steps, img/s, running loss/acc, elapsed, ETA of the epoch and the
    job) when the stream is a terminal; otherwise a line every ``every`` steps. One summary line
    per epoch either way (train numbers are running means in train mode; validation numbers are
    whole-set, in eval mode: said once at the start)."""

    def __init__(self, name: str, state: RunState, meter, epochs: int, every: int, steps: int,
                 job: Optional[Job] = None, stream: Optional[TextIO] = None):
        super().__init__()
        self.name, self.state, self.meter, self.epochs = name, state, meter, epochs
        self.every, self.steps = every, steps
        self.job = job or Job.single(name, epochs - state.epoch)
        self.stream = stream
        self.bar = None

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stderr

    def on_train_begin(self, logs=None):
        self.job.begin(self.name, self.epochs - self.state.epoch)
        self.first_epoch = self.state.epoch
        print(f"{self.job.position}{self.name}: train = running mean over the epoch (train mode); "
              f"val = whole validation set (eval mode)", file=sys.stdout, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        if use_bar(self.out):
            from tqdm.auto import tqdm

            # Some pseudo-terminals (docker exec, script) report a 0x0 size, where tqdm hides the bar:
            # shutil falls back to $COLUMNS/$LINES, then 80x24.
            cols, rows = shutil.get_terminal_size()
            self.bar = tqdm(total=self.steps, file=self.out, unit="step", leave=False,
                            ncols=min(cols, LINE_WIDTH), nrows=max(rows, 2),
                            desc=f"{self.job.position}{self.name} epoch {self.state.epoch + 1}/{self.epochs}",
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed}<{remaining}, {rate_fmt}{postfix}]",
                            postfix=f"job ETA {duration(self.job.eta())}")

    def _fraction(self, step: int) -> float:
        return self.state.epoch - self.first_epoch + (step + 1) / max(self.steps, 1)

    def on_train_batch_end(self, step, logs=None):
        m = self.meter
        self.job.advance(self._fraction(step))
        rate = m.seen / max(m.seconds, 1e-9)
        if self.bar is not None:
            self.bar.update(1)
            if (step + 1) % 10 == 0 or step + 1 == self.steps:
                self.bar.set_postfix_str(f"loss {m.mean_loss:.4f} acc {m.acc:.4f} {rate:,.0f} img/s "
                                         f"job ETA {duration(self.job.eta())}", refresh=False)
        elif (step + 1) % self.every == 0 or step + 1 == self.steps:
            epoch_eta = m.seconds / (step + 1) * (self.steps - step - 1)
            print(f"  {self.job.position}{self.name} epoch {self.state.epoch + 1}/{self.epochs} step "
                  f"{step + 1}/{self.steps}  loss {m.mean_loss:.4f} acc {m.acc:.4f}  {rate:,.0f} img/s  "
                  f"ETA epoch {duration(epoch_eta)}, job {duration(self.job.eta())}",
                  file=sys.stdout, flush=True)

    def show_epoch(self, row) -> None:
        """The epoch's summary line (called by the trainer once the epoch is validated and saved)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        print(epoch_line(row, self.epochs, self.job), file=sys.stdout, flush=True)

    def on_train_end(self, logs=None):
        if self.bar is not None:
            self.bar.close()


def epoch_line(r, epochs: int, job: Optional[Job] = None) -> str:
    """The epoch summary, at most :data:`LINE_WIDTH` columns whatever the numbers."""
    left = job.eta() if job is not None else None
    eta = f" | ETA {duration(left)}" if left else ""
    took = f"{r.seconds:.1f}s" if r.seconds < 60 else duration(r.seconds)
    lr = f"{r.lr:.1e}".replace("e-0", "e-").replace("e+0", "e+")
    return (f"epoch {r.epoch}/{epochs} train loss {r.train_loss:.4f} acc {r.train_acc:.4f} | "
            f"val loss {r.val_loss:.4f} acc {r.val_acc:.4f} | lr {lr} | {took} {r.images_per_s:.0f} img/s{eta}")
