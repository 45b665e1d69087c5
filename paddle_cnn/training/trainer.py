"""Train, evaluate and exactly resume one network through ``paddle.Model.fit``.

The Trainer wires the pieces together: :class:`~paddle_cnn.training.rundir.RunDir` owns the folder
and its typed state, the callbacks in :mod:`~paddle_cnn.training.callbacks` each do one job during
``fit``, and :func:`~paddle_cnn.training.evaluation.predict_logits` is the one inference path.
Everything a run could refuse (config, resume, data, net vs input size, batch vs processes) is
checked before the folder is touched.
"""
from __future__ import annotations

import shlex
import sys
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import paddle
from paddle import nn
from paddle.static import InputSpec

from .. import analysis, fast, nets
from ..contract import InputContract
from .. import datasets as D
from . import checkpoint as ckpt
from . import callbacks as cb
from . import plots, warmstart
from .config import ConfigError, RunConfig
from .ema import WeightEMA
from .data import RunData, build_data
from .evaluation import classification_metrics, confusion_matrix, predict_logits, softmax
from .losses import AuxiliaryLoss, MainAccuracy
from .parallel import share_saved_buffers, world
from .progress import Job, ShowProgress
from .rundir import CheckpointState, EpochRow, RunDir, RunDirError, RunState
from ..errors import Interrupted, interrupt_status
from ..fileio import atomic_savez

PathLike = Union[str, Path]


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
    """(scheduler or None, optimizer) for the config; schedules step per epoch except onecycle (per step)
    and plateau (per epoch, with the validation accuracy)."""
    scheduler = None
    lr: Any = config.lr
    if config.schedule == "step":
        scheduler = paddle.optimizer.lr.StepDecay(config.lr, step_size=config.step_size, gamma=config.gamma)
    elif config.schedule == "cosine":
        scheduler = paddle.optimizer.lr.CosineAnnealingDecay(config.lr, T_max=config.epochs)
    elif config.schedule == "onecycle":
        scheduler = paddle.optimizer.lr.OneCycleLR(max_learning_rate=config.lr,
                                                   total_steps=config.epochs * steps_per_epoch)
    elif config.schedule == "plateau":  # stepped with the validation accuracy (Keras' ReduceLROnPlateau)
        scheduler = paddle.optimizer.lr.ReduceOnPlateau(config.lr, mode="max", factor=config.gamma,
                                                        patience=config.plateau_patience)
    if scheduler is not None:
        lr = scheduler
    wd = config.weight_decay or None
    # Adam and Momentum update every parameter in one merged kernel (use_multi_tensor): one Adam
    # kernel per parameter cost standard_cnn's ten parameters 1.7 ms a step against 0.36 ms merged,
    # 14% of a training step on one AVX2 EPYC thread. Same update to the last bit or one rounding
    # of it; the accumulators save and resume as before. AdamW has no merged kernel in Paddle 3.3.
    if config.optimizer == "adam":
        opt = paddle.optimizer.Adam(lr, parameters=parameters, weight_decay=wd, use_multi_tensor=True)
    elif config.optimizer == "adamw":
        opt = paddle.optimizer.AdamW(lr, parameters=parameters, weight_decay=config.weight_decay)
    elif config.optimizer == "momentum":
        opt = paddle.optimizer.Momentum(lr, momentum=config.momentum, parameters=parameters, weight_decay=wd,
                                        use_multi_tensor=True)
    else:
        opt = paddle.optimizer.SGD(lr, parameters=parameters, weight_decay=wd)
    return scheduler, opt


class Trainer:
    """One run: data, network, optimizer and run folder, trained through ``paddle.Model``.

    ``resume=True`` continues the run in ``run_dir`` from its newest intact checkpoint; the given
    config may differ from the saved one only in :data:`~paddle_cnn.training.rundir.RESUMABLE_CHANGES`.
    Building one checks everything and writes nothing; :meth:`fit` and :meth:`finish` take the folder.
    """

    def __init__(self, config: RunConfig, run_dir: PathLike, *, resume: bool = False, overwrite: bool = False,
                 data: Optional[RunData] = None, verbose: bool = True, job: Optional[Job] = None):
        self.job = job
        self.rank, self.world_size = world()
        self.is_main = self.rank == 0
        self.verbose = verbose and self.is_main
        config = config.validate().with_absolute_paths()
        self.config = config
        self.run = RunDir(run_dir, writer=self.is_main)
        self.run_dir = self.run.path
        # 1. Everything that can refuse the run, before the folder is touched.
        saved = self.run.check_resume(config) if resume else None
        if not resume:
            self.run.check_new(overwrite)
        self.device = select_device(config.device)
        self.threads = config.threads or fast.default_threads(self.world_size)
        cores = fast.available_cores()
        if self.threads > cores:  # oversubscribed oneDNN threads ran 300x slower here
            if self.verbose:
                print(f"threads={self.threads} is more than the {cores} cores this process may use; using {cores}",
                      file=sys.stderr, flush=True)
            self.threads = cores
        if self.device == "cpu":  # GPU runs never build or load the CPU operators
            fast.setup_process(self.threads)  # threads and malloc; no effect where they are unavailable
        if config.amp and self.device != "gpu":
            raise ConfigError("amp=True needs a GPU (mixed precision is not used on CPU); drop --amp")
        if config.precision == "bf16":
            problem = ("it runs through the CPU operators; on a GPU use --amp" if self.device != "cpu"
                       else fast.bf16_unavailable_reason())
            if problem:
                raise ConfigError(f"precision bf16: {problem}; use --precision fp32")
        self.data = data if data is not None else build_data(config)
        self.contract = data_contract(config, self.data)
        cb.seed_everything(config.seed)
        self.net = nets.set_precision(nets.create(config.net, num_classes=len(self.data.class_names),
                                                  in_channels=self.contract.channels,
                                                  input_size=self.contract.shape[1:]), config.precision)
        self.ema = None
        if config.ema_decay:
            copy = nets.set_precision(nets.create(config.net, num_classes=len(self.data.class_names),
                                                  in_channels=self.contract.channels,
                                                  input_size=self.contract.shape[1:]), config.precision)
            self.ema = WeightEMA(self.net, copy, config.ema_decay)
        # batch_size is the global batch: with N processes each takes its equal 1/N share of it.
        self.train_loader = self.data.train.loader(config.batch_size, shuffle=True, seed=config.seed,
                                                   rank=self.rank, world_size=self.world_size)
        self.scheduler, self.optimizer = build_optimizer(config, self.net.parameters(), len(self.train_loader))
        self.model = paddle.Model(self.net, inputs=[InputSpec([None, *self.contract.shape], "float32", "image")],
                                  labels=[InputSpec([None, 1], "int64", "label")])
        # Nets with auxiliary heads (GoogLeNet) train on a weighted sum of their losses.
        loss = AuxiliaryLoss(getattr(self.net, "aux_weights", ()), config.label_smoothing)
        self.model.prepare(self.optimizer, loss, MainAccuracy(name="acc"),
                           amp_configs="O1" if config.amp else None)
        self.state = RunState()
        if saved is not None:
            ckpt.load_weights(saved.folder, self.net)  # checksums verified first
            ckpt.load_optimizer(saved.folder, self.optimizer, self.net)
            restore_grad_scaler(self.model, saved.state.grad_scaler)
            if self.ema is not None:
                ckpt.load_weights(saved.folder, self.ema.average, ckpt.EMA_FILE)
            self.state = saved.state.run
        elif config.init_from:  # a new run's first weights (a resume has its own)
            tensors, source = warmstart.read_source(config.init_from, config.init_which)
            source = warmstart.apply_init(self.net, tensors, source, self.contract.shape, config.init_skip_classifier)
            self.state.init = source.to_dict()
            if self.ema is not None:
                self.ema.reset()
            if self.verbose:
                skipped = f", all but {', '.join(source.skipped)}" if source.skipped else ""
                print(f"weights from {source.path} ({source.kind}, matched {source.matched}{skipped}; "
                      f"sha256 {source.sha256[:12]}); the optimizer starts afresh", flush=True)
        if self.verbose and resume:
            where = "no checkpoint was written yet" if saved is None else f"resuming from {saved.describe()}"
            print(f"{self.run_dir}: {where}; continuing at epoch {self.state.epoch + 1} of {config.epochs}",
                  flush=True)
        # 2. Nothing is written until the folder is taken (owned(): the first fit or finish).
        self._claim = {"overwrite": overwrite and not resume, "damaged": list(saved.damaged) if saved else []}

    @contextmanager
    def owned(self) -> Iterator["Trainer"]:
        """Hold the run folder for the block (fit and finish each take it; nest them to hold it across).

        The first block takes the folder: moves an old run aside (--overwrite), sets damaged
        checkpoints aside and writes config.json."""
        claim = self._claim
        with self.run.owned(overwrite=claim is not None and claim["overwrite"]):
            if claim is not None:  # cleared only once taken: a refused block leaves it for the next
                for path in self.run.set_aside(claim["damaged"]):
                    if self.verbose:
                        print(f"{self.run_dir}: moved the damaged checkpoint {path.name} to {path.parent}",
                              flush=True)
                self.run.save_config(self.config)
                self.state.commands.append(invocation())
                self._claim = None
            yield self

    def checkpoint_state(self) -> CheckpointState:
        c = self.config
        return CheckpointState(
            format=ckpt.FORMAT, run=self.state, config=c.to_dict(), input=self.contract,
            num_classes=len(self.data.class_names), tensors={},
            lr_scheduler=None if self.scheduler is None else self.scheduler.state_dict(),
            rng={"scheme": "reseed every RNG with epoch_seed(seed, epoch) at each epoch start", "seed": c.seed,
                 "next_epoch_seed": cb.epoch_seed(c.seed, self.state.epoch + 1)},
            grad_scaler=grad_scaler_state(self.model))

    # -- training and evaluation
    def fit(self, epochs: Optional[int] = None) -> List[Any]:
        """Train up to ``config.epochs``; ``epochs`` limits how many this call runs (resume later for the rest)."""
        with self.owned():
            remaining = self.config.epochs - self.state.epoch
            if self.state.stopped_early is not None:
                if self.verbose:
                    print(f"{self.run_dir}: stopped early at epoch {self.state.stopped_early} (validation accuracy "
                          f"had not improved for {self.config.early_stop_patience} epochs)", flush=True)
                return self.state.history
            if epochs is not None:
                remaining = min(remaining, epochs)
            if remaining <= 0:
                if self.verbose:
                    print(f"{self.run_dir}: already trained for {self.state.epoch} epochs", flush=True)
                return self.state.history
            return self._fit(remaining)

    def _fit(self, remaining: int) -> List[Any]:
        c, st = self.config, self.state
        meter = cb.TrainMeter(st, self.optimizer, self.run.describe_latest)
        callbacks = [cb.ReseedEachEpoch(c.seed, st, self.train_loader), meter]
        if self.scheduler is not None and c.schedule == "onecycle":
            callbacks.append(cb.StepSchedulePerStep(self.scheduler))
        if self.ema is not None:
            callbacks.append(cb.UpdateAverage(self.ema, st))
        vdl = progress = None
        if self.is_main:
            names = self.data.class_names
            vdl = cb.VisualDLLog(self.run.files.vdl, st, meter, names, self._sample_picture, c.to_dict())
            callbacks.append(vdl)
        if self.verbose:
            progress = ShowProgress(c.net, st, meter, c.epochs, c.log_every, len(self.train_loader), self.job)
            callbacks.append(progress)
        callbacks.append(cb.AtEpochEnd(lambda: self._end_of_epoch(meter, vdl, progress)))
        # An inert LRScheduler callback stops paddle.Model from stepping the schedule every batch.
        inert = paddle.callbacks.LRScheduler(by_step=False, by_epoch=False)
        try:
            with warnings.catch_warnings():  # Paddle's BatchNorm warns on every training forward that
                # it tracks global statistics (it always has); nothing a user can act on.
                warnings.filterwarnings("ignore", message="When training, we now always track global mean")
                self.model.fit(self.train_loader, epochs=remaining, verbose=0, callbacks=callbacks + [inert])
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through the entry points' handler
            if vdl is not None:
                vdl.salvage()
            at = f"step {meter.steps + 1}" if meter.steps < len(self.train_loader) else "its end-of-epoch work"
            raise Interrupted(f"interrupted during epoch {st.epoch + 1}, {at}; "
                              f"{self.run.describe_latest()}; continue with: paddle-cnn train --resume "
                              f"{self.run_dir}", interrupt_status(exc)) from None
        except BaseException:
            if vdl is not None:
                vdl.salvage()
            raise
        return st.history

    def _end_of_epoch(self, meter: cb.TrainMeter, vdl: Optional[cb.VisualDLLog],
                      progress: Optional[ShowProgress]) -> None:
        """Everything after an epoch's last step, in this order: the checkpoint must hold the stepped
        schedule, the epoch's row, the early-stopping verdict and the VisualDL log size it was taken at."""
        c, st = self.config, self.state
        seconds = meter.seconds  # training time only, before validation
        val = self.evaluate("val")  # 1. the whole validation set, eval mode (and the average's)
        ema_acc = self.evaluate("val", self.ema.average)["acc"] if self.ema is not None else None
        if self.scheduler is not None and c.schedule == "plateau":
            self.scheduler.step(val["acc"])  # 2. per-epoch schedules
        elif self.scheduler is not None and c.schedule != "onecycle":
            self.scheduler.step()
        row = EpochRow(epoch=st.epoch + 1, train_loss=meter.mean_loss, train_acc=meter.acc, val_loss=val["loss"],
                       val_acc=val["acc"], lr=meter.lr, seconds=seconds, images_per_s=meter.seen / seconds,
                       ema_val_acc=ema_acc)
        improved = cb.record_epoch(st, row)  # 3. history, epoch counter, best, early stopping
        if c.early_stop_patience and st.epoch < c.epochs and st.epoch - st.best_epoch >= c.early_stop_patience:
            st.stopped_early = st.epoch
            self.model.stop_training = True  # paddle.Model.fit ends after this epoch
        if vdl is not None:
            vdl.log_epoch(row, val)  # 4. VisualDL (sets st.vdl_log_bytes)
        if self.is_main:  # 5. metrics.csv, then epoch_N / latest (/ best) (/ ema)
            self.run.write_metrics(st.history)
            self.run.save_checkpoint(self.net, self.optimizer, self.checkpoint_state(), best=improved,
                                     keep=c.keep_epochs, ema=None if self.ema is None else self.ema.average)
        if progress is not None:
            progress.show_epoch(row)  # 6. the epoch's summary line
            if st.stopped_early is not None:
                print(f"early stopping: validation accuracy has not improved for {c.early_stop_patience} epochs "
                      f"(best {st.best_val_acc:.4f} at epoch {st.best_epoch}); training ends at epoch {st.epoch}",
                      flush=True)

    def dataset(self, split: str):
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return getattr(self.data, split)

    def evaluate(self, split: str, net: Optional[nn.Layer] = None) -> Dict[str, Any]:
        """Loss and accuracy over the whole split in eval mode, plus its confusion matrix and logits
        (of the trained net, or of ``net``: the weights' average)."""
        ds = self.dataset(split)
        net = net or self.net
        share_saved_buffers(net)
        logits = predict_logits(net, ds, max(self.config.batch_size, 256))
        metrics = classification_metrics(logits, ds.labels)
        metrics["confusion"] = confusion_matrix(logits.argmax(1), ds.labels, len(self.data.class_names))
        metrics["logits"] = logits
        return metrics

    def finish(self) -> Dict[str, Any]:
        """Evaluate the final model on val and test, save predictions, plots and results.json.

        Every process returns the same results; only rank 0 writes. The logits stay in
        ``self.predictions`` so callers need not read files another rank wrote.
        """
        cfg, st = self.config, self.state
        with self.owned():
            results: Dict[str, Any] = {
                "net": cfg.net, "dataset": cfg.dataset, "run_dir": str(self.run_dir), "commands": st.commands,
                "epochs": st.epoch, "checkpoint": "latest (the final epoch)",
                "params": int(sum(int(np.prod(p.shape)) for p in self.net.parameters())),
                "processes": self.world_size,  # data-parallel processes of the last fit
                "threads": self.threads, "fast_ops": self.device == "cpu" and fast.ops() is not None,
                "precision": cfg.precision, "cpu": fast.cpu_model(), "isa": fast.cpu_isa(),
                "best_epoch": st.best_epoch, "best_val_acc": st.best_val_acc,
                "input_shape": list(self.contract.shape), "stopped_early": st.stopped_early, "init": st.init,
                "images": {s: len(self.dataset(s)) for s in ("train", "val", "test")}}
            records = analysis.layer_table(self.net, self.contract.shape)
            results["receptive_field"] = analysis.receptive_field_of(records)
            results["macs"], results["flops"] = analysis.cost_of(records)
            results["history"] = [asdict(r) for r in st.history]  # so saved results can draw curves
            if st.history:
                results["seconds_per_epoch"] = float(np.mean([r.seconds for r in st.history]))
                results["train_images_per_s"] = float(np.mean([r.images_per_s for r in st.history]))
            self.predictions: Dict[str, np.ndarray] = {}
            for split in ("val", "test"):
                ev = self.evaluate(split)
                self.predictions[split] = ev["logits"]
                results[split] = {"loss": ev["loss"], "acc": ev["acc"], "n": ev["n"]}
                if self.is_main:
                    atomic_savez(self.run.files.predictions(split), logits=ev["logits"],
                                 labels=self.dataset(split).labels)
                if split == "test" and self.is_main:
                    self._test_pictures(ev)
                    cb.log_test_metrics(self.run.files.vdl, st.global_step, ev)
                if self.data.scene is not None:  # the paper's numbers, from the same confusion matrix
                    from ..datasets import hyperspectral as H

                    results[split].update(H.scene_metrics(ev["confusion"]))
            if self.data.scene is not None:
                k = len(self.data.class_names)
                results["pixels_per_class"] = {s: self.dataset(s).counts(k) for s in ("train", "val", "test")}
            results["best"] = self._best_checkpoint_metrics(results)
            if self.ema is not None:  # checkpoints/ema: the average after the last epoch
                results["ema"] = {"decay": cfg.ema_decay}
                for split in ("val", "test"):
                    m = self.evaluate(split, self.ema.average)
                    results["ema"][split] = {"loss": m["loss"], "acc": m["acc"], "n": m["n"]}
            if self.is_main and st.history:
                plots.training_curves({cfg.net: st.history}, self.run.files.curves, title=cfg.net)
            self.run.write_results(results)
        return results

    def _best_checkpoint_metrics(self, final: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """Val and test numbers of checkpoints/best (what evaluate, predict and export use by default),
        beside the final epoch's that the tables report."""
        st = self.state
        if st.best_epoch is None:
            return None
        if st.best_epoch == st.epoch:
            return {"epoch": st.best_epoch, "val": final["val"], "test": final["test"]}
        net, _, _ = load_model(self.run_dir, "best")
        out: Dict[str, Any] = {"epoch": st.best_epoch}
        for split in ("val", "test"):
            m = evaluate_network(net, self.dataset(split), max(self.config.batch_size, 256))
            out[split] = {"loss": m["loss"], "acc": m["acc"], "n": m["n"]}
        return out

    def _sample_picture(self) -> np.ndarray:
        """What VisualDL shows of the inputs: ten training images per class, or a scene's labels."""
        names, scene = self.data.class_names, self.data.scene
        if scene is not None:
            return np.concatenate([plots.false_colour(scene.reduced()), plots.label_map_rgb(scene.ground_truth())],
                                  axis=1)
        return plots.tile_grid(plots.samples_by_class(self.data.train.images, self.data.train.labels, len(names)),
                               len(names), 10)

    def _test_pictures(self, ev: Dict[str, Any]) -> None:
        names, cfg = self.data.class_names, self.config
        plots.confusion_figure(ev["confusion"], names, self.run.files.confusion,
                               f"{cfg.net}: test set, accuracy {ev['acc']:.4f}")
        if self.data.scene is not None:  # windows, not pictures: the experiment draws the scene's map
            return
        pick = np.random.default_rng(cfg.seed).choice(len(self.data.test), size=min(18, len(self.data.test)),
                                                      replace=False)
        plots.prediction_grid(self.data.test.images[pick], self.data.test.labels[pick],
                              softmax(ev["logits"][pick]), names, self.run.files.prediction_grid,
                              title=f"{cfg.net}: random test images (red = wrong)")


def grad_scaler_state(model: paddle.Model) -> Optional[Dict[str, Any]]:
    """AMP's loss-scaling state as JSON (None without AMP): a resume that starts the scale afresh
    would skip or under-scale steps the uninterrupted run did not."""
    scaler = getattr(model, "_scaler", None)  # paddle.Model creates it at the first AMP train step
    state = scaler.state_dict() if scaler is not None else {}
    if not state:
        return None
    return {k: ([float(x) for x in np.asarray(v).reshape(-1)] if k == "scale" else v) for k, v in state.items()}


def restore_grad_scaler(model: paddle.Model, state: Optional[Dict[str, Any]]) -> None:
    """Recreate paddle.Model's GradScaler (as its first AMP step would) with the saved state."""
    if state is None:
        return
    if model._adapter._amp_level == "O0":
        raise ConfigError("the checkpoint holds AMP loss-scaling state but this run has amp off; resume with --amp")
    if getattr(model, "_scaler", None) is None:
        model._scaler = paddle.amp.GradScaler(**model._adapter._amp_configs)
    model._scaler.load_state_dict(dict(state, scale=np.asarray(state["scale"], dtype=np.float32)))


def data_contract(config: RunConfig, data: RunData) -> InputContract:
    """The input contract of a run: the shape its loader yields and the normalisation it applied."""
    shape = [int(v) for v in data.train[0][0].shape]
    channels, height, width = shape[0], shape[-2], shape[-1]
    bands = shape[1] if len(shape) == 4 else 0
    mean, std = (list(v) if isinstance(v, tuple) else v for v in D.mean_std(config.normalize))
    return InputContract(channels=channels, height=height, width=width, dataset=config.dataset,
                         normalize=config.normalize, mean=mean, std=std, class_names=list(data.class_names),
                         bands=bands)


def invocation() -> str:
    """The command line that is running, as a user would type it (recorded in results.json)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec and spec.name:
        head = ["python", "-m", spec.name.removesuffix(".__main__")]
    elif sys.argv[0].endswith(".py"):
        head = ["python", sys.argv[0]]
    else:  # a console script (paddle-cnn): its name, not the virtualenv's path to it
        head = [Path(sys.argv[0]).name]
    return shlex.join(head + sys.argv[1:])


def evaluate_network(net: nn.Layer, dataset, batch_size: int = 256) -> Dict[str, Any]:
    """Whole-set loss and accuracy of any network on a labelled dataset (e.g. one just loaded from a run)."""
    return classification_metrics(predict_logits(net, dataset, batch_size), dataset.labels)


def net_cost(config: RunConfig) -> analysis.FlopCount:
    """MACs and FLOPs per image of the config's net at the input it will see."""
    shape = config.input_shape()
    return analysis.count_flops(nets.create(config.net, in_channels=shape[0], input_size=shape[1:]), shape)


def plan_job(configs: List[RunConfig]) -> Job:
    """A :class:`~paddle_cnn.training.progress.Job` over the nets an experiment will train, each
    epoch costed by its FLOPs per image and training images (plus a per-image overhead, which
    dominates tiny nets)."""
    job = Job()
    for c in configs:
        sizes = D.registry.get_dataset(c.dataset).sizes
        images = c.train_limit or round(sizes.get("train") or sizes["all"] * c.train_fraction)
        job.add(c.net, c.epochs, images * (net_cost(c).flops + 2e6))
    return job


def train_and_evaluate(config: RunConfig, run_dir: PathLike, *, resume: bool = False, overwrite: bool = False,
                       data: Optional[RunData] = None, verbose: bool = True,
                       job: Optional[Job] = None) -> Tuple["Trainer", Dict[str, Any]]:
    """The whole experiment for one network: fit (or continue), then evaluate and save results."""
    trainer = Trainer(config, run_dir, resume=resume, overwrite=overwrite, data=data, verbose=verbose, job=job)
    with trainer.owned():  # one hold from the first write to results.json
        trainer.fit()
        return trainer, trainer.finish()


def load_model(run_dir: PathLike, which: str = "best") -> Tuple[nn.Layer, RunConfig, CheckpointState]:
    """A fresh network built from a run's checkpoint (its config and input contract) with its weights."""
    run = RunDir(run_dir, writer=False)
    if not run.path.is_dir():
        raise RunDirError(f"{run.path}: no such run folder")
    state = run.read_checkpoint(which)
    config = RunConfig.from_dict(state.config, f"{run.checkpoints / which}/state.json: key 'config'")
    contract = state.input
    net = nets.create(config.net, num_classes=state.num_classes, in_channels=contract.channels,
                      input_size=contract.shape[1:])
    ckpt.load_weights(run.checkpoint_folder(which), net)
    # A bf16 run's net computes in bf16 where this machine can (else in float32, which is no less exact).
    if config.precision == "bf16" and fast.bf16_unavailable_reason() is None:
        nets.set_precision(net, "bf16")
    net.eval()
    return net, config, state
