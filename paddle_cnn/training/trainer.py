"""Train, evaluate and exactly resume one network through ``paddle.Model``.

A run folder holds everything about a run::

    config.json            the resolved RunConfig
    checkpoints/epoch_N/   model.safetensors, optimizer.safetensors, state.json (one per epoch)
    checkpoints/latest/    the newest epoch;  checkpoints/best/  the best validation accuracy
    metrics.csv            one row per epoch
    vdl/                   VisualDL logs (one continuous curve across resumes)
    predictions/           logits and labels of the final model on val and test (.npz)
    curves.png, confusion_test.png, predictions_test.png, results.json

``paddle.Model.fit`` counts epochs from 0 and knows nothing of earlier runs, so :class:`RunCallback`
maps its epochs onto the run's, reseeds every RNG from (seed, epoch) at each epoch start (the RNG
state is then two integers), steps the LR schedule and writes logs and checkpoints.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import paddle
from paddle import nn
from paddle.static import InputSpec

from .. import analysis, nets
from . import checkpoint as ckpt
from . import plots
from .config import ConfigError, RunConfig
from .data import RunData, build_data
from .evaluation import classification_metrics, confusion_matrix, softmax
from .losses import AuxiliaryLoss, MainAccuracy
from ..fileio import atomic_savez, atomic_write_text, crash_point

PathLike = Union[str, Path]
VDL_FILE = "vdlrecords.run.log"  # one fixed name: VisualDL reads a single file per run folder
# Settings that may change when a run is resumed; anything else must match the saved config.
RESUMABLE_CHANGES = ("epochs", "log_every", "device", "keep_epochs", "data_dir", "train_csv", "test_csv", "download")
METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s"]


class RunDirError(ValueError):
    """A run folder that is missing, or holds something the command would otherwise destroy."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    paddle.seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed every RNG gets at the start of ``epoch``: resuming at any epoch draws the same numbers."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**31


def world() -> Tuple[int, int]:
    """(rank, number of processes) of this data-parallel job; (0, 1) outside one.

    Read from the launcher's environment (``python -m paddle.distributed.launch``): paddle.Model
    initialises the process group itself when it is built.
    """
    env = paddle.distributed.ParallelEnv()
    return int(env.rank), max(int(env.nranks), 1)


def is_main_process() -> bool:
    return world()[0] == 0


def select_device(device: str) -> str:
    """'auto' picks the GPU when this Paddle build has CUDA and sees a GPU; 'gpu' without one is an error."""
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "auto":
        device = "gpu" if has_gpu else "cpu"
    if device == "gpu" and not has_gpu:
        raise ConfigError("device 'gpu' requested, but this Paddle build has no CUDA or sees no GPU; "
                         "install paddle-cnn[gpu] on a CUDA machine, or use --device cpu")
    paddle.set_device(device)
    return device


def build_optimizer(config: RunConfig, parameters, steps_per_epoch: int):
    """(scheduler or None, optimizer) for the config; schedules step per epoch except onecycle (per step)."""
    scheduler = None
    lr: Any = config.lr
    if config.schedule == "step":
        scheduler = paddle.optimizer.lr.StepDecay(config.lr, step_size=config.step_size, gamma=config.gamma)
    elif config.schedule == "cosine":
        scheduler = paddle.optimizer.lr.CosineAnnealingDecay(config.lr, T_max=config.epochs)
    elif config.schedule == "onecycle":
        scheduler = paddle.optimizer.lr.OneCycleLR(max_learning_rate=config.lr,
                                                   total_steps=config.epochs * steps_per_epoch)
    if scheduler is not None:
        lr = scheduler
    wd = config.weight_decay or None
    if config.optimizer == "adam":
        opt = paddle.optimizer.Adam(lr, parameters=parameters, weight_decay=wd)
    elif config.optimizer == "adamw":
        opt = paddle.optimizer.AdamW(lr, parameters=parameters, weight_decay=config.weight_decay)
    elif config.optimizer == "momentum":
        opt = paddle.optimizer.Momentum(lr, momentum=config.momentum, parameters=parameters, weight_decay=wd)
    else:
        opt = paddle.optimizer.SGD(lr, parameters=parameters, weight_decay=wd)
    return scheduler, opt


class _NullWriter:
    """Stands in for VisualDL's LogWriter on processes other than rank 0."""

    def __getattr__(self, name):
        return lambda *a, **k: None


def _open_vdl(logdir: Path, keep_bytes: Optional[int]):
    """A LogWriter appending to the run's log; on resume, records written after the checkpoint (by an
    interrupted epoch) are moved to ``vdl/interrupted/`` so the curve has no duplicate steps."""
    from visualdl import LogWriter

    log = logdir / VDL_FILE
    if keep_bytes is not None and log.is_file() and log.stat().st_size > keep_bytes:
        aside = logdir / "interrupted" / f"vdlrecords.{int(time.time())}.log"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, aside)
        with open(log, "rb+") as f:
            f.truncate(keep_bytes)
    stdout = sys.stdout
    sys.stdout = io.StringIO()  # VisualDL prints a notice when it appends; we expect to append
    try:
        return LogWriter(logdir=str(logdir), file_name=VDL_FILE)
    finally:
        sys.stdout = stdout


class RunCallback(paddle.callbacks.Callback):
    """Maps fit's epochs onto the run's and does the per-step and per-epoch bookkeeping."""

    def __init__(self, trainer: "Trainer"):
        super().__init__()
        self.trainer = trainer

    # -- helpers
    def _print(self, text: str) -> None:
        if self.trainer.is_main and self.trainer.verbose:
            print(text, flush=True)

    def on_train_begin(self, logs=None):
        t = self.trainer
        self.steps = len(t.train_loader)
        self.writer = _open_vdl(t.run_dir / "vdl", t.state.get("vdl_log_bytes")) if t.is_main else _NullWriter()
        if t.state["epoch"] == 0:
            sample = plots.tile_grid(plots.samples_by_class(t.data.train.images, t.data.train.labels,
                                                            len(t.data.class_names)), len(t.data.class_names), 10)
            self.writer.add_image("inputs/samples_by_class", np.repeat(sample[:, :, None], 3, axis=2), 0)
            # VisualDL takes int, float and str only (a bool is refused as an int): show the rest as text.
            hparams = {k: v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else str(v)
                       for k, v in t.config.to_dict().items()}
            self.writer.add_hparams(hparams, ["val/acc", "val/loss"])

    def on_epoch_begin(self, epoch, logs=None):
        t = self.trainer
        self.epoch = t.state["epoch"] + 1
        seed_everything(epoch_seed(t.config.seed, self.epoch))
        t.train_loader.set_epoch(self.epoch)
        self.loss_sum = 0.0
        self.seen = 0
        self.acc = float("nan")
        self.lr = t.optimizer.get_lr()
        self.started = time.perf_counter()

    def on_train_batch_end(self, step, logs=None):
        t = self.trainer
        loss = float(logs["loss"][0])
        if t.world_size > 1:  # log (and NaN-check) the mean over processes, the loss of the global batch
            mean = paddle.to_tensor([loss], dtype="float32")
            paddle.distributed.all_reduce(mean)
            loss = float(mean.numpy()[0]) / t.world_size
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at epoch {self.epoch}, step {step + 1} (global step "
                f"{t.state['global_step'] + 1}); training stopped, the last good checkpoint is "
                f"{t.run_dir / 'checkpoints' / 'latest'}")
        batch = int(logs.get("batch_size", t.config.batch_size))
        self.loss_sum += loss * batch
        self.seen += batch
        self.acc = float(logs["acc"])
        t.state["global_step"] += 1
        gs = t.state["global_step"]
        crash_point("step")
        self.writer.add_scalar("train/loss", loss, gs)
        self.writer.add_scalar("train/acc_running", self.acc, gs)
        if t.scheduler is not None and t.config.schedule == "onecycle":
            t.scheduler.step()
        if (step + 1) % t.config.log_every == 0 or step + 1 == self.steps:
            rate = self.seen / max(time.perf_counter() - self.started, 1e-9)
            self._print(f"  epoch {self.epoch}/{t.config.epochs} step {step + 1}/{self.steps}  "
                        f"loss {self.loss_sum / self.seen:.4f}  acc {self.acc:.4f}  {rate:,.0f} img/s")

    def on_epoch_end(self, epoch, logs=None):
        t = self.trainer
        seconds = time.perf_counter() - self.started
        val = t.evaluate("val")
        if t.scheduler is not None and t.config.schedule != "onecycle":
            t.scheduler.step()
        row = {"epoch": self.epoch, "train_loss": self.loss_sum / max(self.seen, 1), "train_acc": self.acc,
               "val_loss": val["loss"], "val_acc": val["acc"], "lr": float(self.lr), "seconds": seconds,
               "images_per_s": self.seen / seconds}
        st = t.state
        st["history"].append(row)
        st["epoch"] = self.epoch
        improved = st["best_val_acc"] is None or val["acc"] > st["best_val_acc"]
        if improved:
            st["best_val_acc"], st["best_epoch"] = val["acc"], self.epoch
        w = self.writer
        w.add_scalar("val/loss", val["loss"], self.epoch)
        w.add_scalar("val/acc", val["acc"], self.epoch)
        w.add_scalar("train/epoch_loss", row["train_loss"], self.epoch)
        w.add_scalar("lr", row["lr"], self.epoch)
        w.add_image("val/confusion", plots.confusion_image(val["confusion"], t.data.class_names,
                                                           f"validation, epoch {self.epoch}"), self.epoch)
        w.flush()
        if t.is_main:
            st["vdl_log_bytes"] = (t.run_dir / "vdl" / VDL_FILE).stat().st_size
            t.write_metrics_csv()
            crash_point("epoch-end")
            t.save_checkpoint(best=improved)
        self._print(f"epoch {self.epoch}/{t.config.epochs}  train loss {row['train_loss']:.4f} "
                    f"acc {row['train_acc']:.4f} (running, train mode)  val loss {val['loss']:.4f} "
                    f"acc {val['acc']:.4f} (whole set, eval mode)  lr {row['lr']:.2e}  {seconds:.1f} s "
                    f"({row['images_per_s']:,.0f} img/s)")

    def on_train_end(self, logs=None):
        self.writer.close()


class Trainer:
    """One run: data, network, optimizer and run folder, trained through ``paddle.Model``.

    ``resume=True`` continues the run in ``run_dir`` from ``checkpoints/latest``; the given config
    may differ from the saved one only in :data:`RESUMABLE_CHANGES`.
    """

    def __init__(self, config: RunConfig, run_dir: PathLike, *, resume: bool = False, overwrite: bool = False,
                 data: Optional[RunData] = None, verbose: bool = True):
        self.run_dir = Path(run_dir)
        self.is_main = is_main_process()
        self.verbose = verbose
        config.validate()
        if resume:
            self._check_resume(config)
        else:
            self._claim_run_dir(overwrite)
        self.config = config
        self.device = select_device(config.device)
        self.data = data if data is not None else build_data(config)
        seed_everything(config.seed)
        in_shape = tuple(int(v) for v in self.data.train[0][0].shape)  # (C, H, W) after any resize
        self.in_shape = in_shape
        self.net = nets.create(config.net, num_classes=len(self.data.class_names), in_channels=in_shape[0],
                               input_size=tuple(in_shape[1:]))
        # batch_size is the global batch: with N processes each takes its 1/N share of it.
        self.rank, self.world_size = world()
        self.train_loader = self.data.train.loader(config.batch_size, shuffle=True, seed=config.seed,
                                                   rank=self.rank, world_size=self.world_size)
        self.scheduler, self.optimizer = build_optimizer(config, self.net.parameters(), len(self.train_loader))
        self.model = paddle.Model(self.net, inputs=[InputSpec([None, *in_shape], "float32", "image")],
                                  labels=[InputSpec([None, 1], "int64", "label")])
        amp = None
        if config.amp:
            if self.device != "gpu":
                raise ConfigError("amp=True needs a GPU (mixed precision is not used on CPU); drop --amp")
            amp = "O1"
        # Nets with auxiliary heads (GoogLeNet) train on a weighted sum of their losses.
        loss = AuxiliaryLoss(getattr(self.net, "aux_weights", ()))
        self.model.prepare(self.optimizer, loss, MainAccuracy(name="acc"), amp_configs=amp)
        self.state: Dict[str, Any] = {"epoch": 0, "global_step": 0, "best_val_acc": None, "best_epoch": None,
                                      "history": [], "vdl_log_bytes": None}
        if resume:
            for leftover in (self.run_dir / "checkpoints").glob(".tmp-*") if self.is_main else ():
                shutil.rmtree(leftover)  # a checkpoint write that a crash cut short
            latest = self.run_dir / "checkpoints" / "latest"
            try:
                ckpt.resolve(latest)
            except ckpt.CheckpointError:
                # Died before its first checkpoint: start at epoch 1; old log records go aside.
                self.state["vdl_log_bytes"] = 0
            else:
                self.state = ckpt.read_state(latest)
                ckpt.load_weights(latest, self.net)
                ckpt.load_optimizer(latest, self.optimizer, self.net)
        # Every command that trained this run (the first, then each resume), for results.json.
        self.state.setdefault("commands", []).append(invocation())
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config.save(self.run_dir / "config.json")

    # -- run folder
    def _check_resume(self, config: RunConfig) -> None:
        if not (self.run_dir / "config.json").is_file():
            raise RunDirError(f"{self.run_dir}: cannot resume, no run folder here (config.json missing)")
        saved = RunConfig.load(self.run_dir / "config.json")
        diff = saved.differences(config, ignore=RESUMABLE_CHANGES)
        if saved.epochs != config.epochs and saved.schedule in ("cosine", "onecycle"):
            diff["epochs"] = (saved.epochs, config.epochs)  # the schedule's length depends on it
        if diff:
            lines = ", ".join(f"{k}: saved {a!r} vs given {b!r}" for k, (a, b) in diff.items())
            raise RunDirError(f"{self.run_dir}: the command line disagrees with the run's config.json ({lines}); "
                              "resume with the saved settings or start a new run")

    def _claim_run_dir(self, overwrite: bool) -> None:
        if not self.is_main:
            return  # only rank 0 writes; by now it may already have created the folder
        if not self.run_dir.exists() or not any(self.run_dir.iterdir()):
            return
        if not overwrite:
            raise RunDirError(f"{self.run_dir} already holds a run; pass --resume to continue it, "
                              "--overwrite to start again (the old run is moved aside), or choose another --out")
        aside = self.run_dir.with_name(f"{self.run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(self.run_dir, aside)
        print(f"moved the previous run to {aside}", flush=True)

    def save_checkpoint(self, best: bool) -> None:
        folder = self.run_dir / "checkpoints"
        state = dict(self.state, config=self.config.to_dict(), input_shape=list(self.in_shape),
                     num_classes=len(self.data.class_names),
                     rng={"scheme": "reseed every RNG with epoch_seed(seed, epoch) at each epoch start",
                          "seed": self.config.seed,
                          "next_epoch_seed": epoch_seed(self.config.seed, self.state["epoch"] + 1)},
                     lr_scheduler=None if self.scheduler is None else self.scheduler.state_dict())
        also = ("latest", "best") if best else ("latest",)
        ckpt.save_checkpoint(folder / f"epoch_{self.state['epoch']}", self.net, self.optimizer, state, also=also)
        if self.config.keep_epochs:
            old = sorted((p for p in folder.glob("epoch_*") if p.name[6:].isdigit()), key=lambda p: int(p.name[6:]))
            for p in old[:-self.config.keep_epochs]:
                shutil.rmtree(p)

    def write_metrics_csv(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        for row in self.state["history"]:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        atomic_write_text(self.run_dir / "metrics.csv", buf.getvalue())

    # -- training and evaluation
    def fit(self, epochs: Optional[int] = None) -> List[dict]:
        """Train up to ``config.epochs``; ``epochs`` limits how many this call runs (resume later for the rest)."""
        remaining = self.config.epochs - self.state["epoch"]
        if epochs is not None:
            remaining = min(remaining, epochs)
        if remaining <= 0:
            if self.verbose and self.is_main:
                print(f"{self.run_dir}: already trained for {self.state['epoch']} epochs", flush=True)
            return self.state["history"]
        # An inert LRScheduler callback stops paddle.Model from stepping the schedule every batch;
        # RunCallback steps it per epoch (or per step for onecycle).
        inert = paddle.callbacks.LRScheduler(by_step=False, by_epoch=False)
        self.model.fit(self.train_loader, epochs=remaining, verbose=0, callbacks=[RunCallback(self), inert])
        return self.state["history"]

    def dataset(self, split: str):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return getattr(self.data, split)

    def predict_logits(self, dataset) -> np.ndarray:
        return predict_logits(self.model, dataset, max(self.config.batch_size, 256))

    def evaluate(self, split: str) -> Dict[str, Any]:
        """Loss and accuracy over the whole split in eval mode, plus its confusion matrix and logits."""
        ds = self.dataset(split)
        logits = self.predict_logits(ds)
        metrics = classification_metrics(logits, ds.labels)
        metrics["confusion"] = confusion_matrix(logits.argmax(1), ds.labels, len(self.data.class_names))
        metrics["logits"] = logits
        return metrics

    def finish(self) -> Dict[str, Any]:
        """Evaluate the final model on val and test, save predictions, plots and results.json."""
        cfg = self.config
        results: Dict[str, Any] = {"net": cfg.net, "dataset": cfg.dataset, "run_dir": str(self.run_dir),
                                   "commands": self.state.get("commands", []), "epochs": self.state["epoch"],
                                   "params": int(sum(int(np.prod(p.shape)) for p in self.net.parameters())),
                                   "processes": self.world_size,  # data-parallel processes of the last fit
                                   "best_epoch": self.state["best_epoch"], "best_val_acc": self.state["best_val_acc"]}
        try:
            results["receptive_field"] = list(analysis.receptive_field(self.net, self.in_shape))
        except ValueError:
            results["receptive_field"] = None
        cost = analysis.count_flops(self.net, self.in_shape)
        results["input_shape"] = list(self.in_shape)
        results["macs"], results["flops"] = cost.macs, cost.flops
        history = self.state["history"]
        if history:
            results["seconds_per_epoch"] = float(np.mean([r["seconds"] for r in history]))
            results["train_images_per_s"] = float(np.mean([r["images_per_s"] for r in history]))
        for split in ("val", "test"):
            ev = self.evaluate(split)
            results[split] = {"loss": ev["loss"], "acc": ev["acc"], "n": ev["n"]}
            if self.is_main:
                pred_dir = self.run_dir / "predictions"
                atomic_savez(pred_dir / f"{split}.npz", logits=ev["logits"], labels=self.dataset(split).labels)
            if split == "test" and self.is_main:
                names = self.data.class_names
                plots.confusion_figure(ev["confusion"], names, self.run_dir / "confusion_test.png",
                                       f"{cfg.net}: test set, accuracy {ev['acc']:.4f}")
                pick = np.random.default_rng(cfg.seed).choice(len(self.data.test), size=18, replace=False)
                plots.prediction_grid(self.data.test.images[pick], self.data.test.labels[pick],
                                      softmax(ev["logits"][pick]), names, self.run_dir / "predictions_test.png",
                                      title=f"{cfg.net}: random test images (red = wrong)")
        if self.is_main:
            if history:
                plots.training_curves({cfg.net: history}, self.run_dir / "curves.png", title=cfg.net)
            atomic_write_text(self.run_dir / "results.json", json.dumps(results, indent=2) + "\n")
        return results


def invocation() -> str:
    """The command line that is running, as a user would type it (recorded in results.json)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name.removesuffix(".__main__")] if spec and spec.name else ["python", sys.argv[0]]
    return shlex.join(head + sys.argv[1:])


def predict_logits(model: paddle.Model, dataset, batch_size: int = 256) -> np.ndarray:
    """Logits of the network in eval mode for every item, through ``paddle.Model.predict``."""
    outputs = model.predict(dataset.loader(batch_size), stack_outputs=True, verbose=0)
    return np.asarray(outputs[0])


def evaluate_network(net: nn.Layer, dataset, batch_size: int = 256) -> Dict[str, Any]:
    """Whole-set loss and accuracy of any network on a labelled dataset (e.g. one just loaded from a run)."""
    shape = tuple(int(v) for v in dataset[0][0].shape)
    model = paddle.Model(net, inputs=[InputSpec([None, *shape], "float32", "image")],
                         labels=[InputSpec([None, 1], "int64", "label")])
    model.prepare()
    return classification_metrics(predict_logits(model, dataset, batch_size), dataset.labels)


def train_and_evaluate(config: RunConfig, run_dir: PathLike, *, resume: bool = False, overwrite: bool = False,
                       data: Optional[RunData] = None, verbose: bool = True) -> Tuple["Trainer", Dict[str, Any]]:
    """The whole experiment for one network: fit (or continue), then evaluate and save results."""
    trainer = Trainer(config, run_dir, resume=resume, overwrite=overwrite, data=data, verbose=verbose)
    trainer.fit()
    return trainer, trainer.finish()


def load_model(run_dir: PathLike, which: str = "best") -> Tuple[nn.Layer, RunConfig, Dict[str, Any]]:
    """A fresh network built from a run's config with the weights of ``checkpoints/{which}`` (or epoch_N)."""
    run_dir = Path(run_dir)
    config = RunConfig.load(run_dir / "config.json")
    folder = run_dir / "checkpoints" / which
    state = ckpt.read_state(folder)
    shape = state.get("input_shape") or [1] + list(config.input_size or (28, 28))
    net = nets.create(config.net, num_classes=state.get("num_classes", 10), in_channels=shape[0],
                      input_size=tuple(shape[1:]))
    ckpt.load_weights(folder, net)
    net.eval()
    return net, config, state
