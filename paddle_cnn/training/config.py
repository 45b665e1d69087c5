"""The typed configuration of one training run; CLI flags are generated from its fields."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, get_args, get_origin, get_type_hints

from ..datasets import registry
from ..errors import ConfigError
from ..typed import SchemaError, from_dict

OPTIMIZERS = ("adam", "adamw", "sgd", "momentum")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")
DATASETS = registry.list_datasets()
AUGMENTS = ("none", "flip-crop", "crop")
NORMALIZE = registry.normalisations()


@dataclass
class RunConfig:
    """Everything that decides a run's numbers. Saved as config.json in the run folder."""

    net: str = "standard_cnn"
    dataset: str = "fashion-mnist"
    data_dir: Optional[str] = None  # folder holding {dataset}/ (its official files); else $PADDLE_CNN_DATA, else data/
    train_csv: Optional[str] = None  # a labelled CSV to use instead of the IDX training files
    test_csv: Optional[str] = None  # a labelled CSV to use instead of the IDX test files
    verify_md5: bool = True  # check IDX files against the official md5s
    download: bool = True  # fetch missing IDX files (md5-checked) when the network allows
    val_size: int = 1000  # the notebook's 59k/1k split of the 60k training images (a scene: of its training pixels)
    val_fraction: float = 0.0  # > 0: this share of the training rows (or pixels) validates, instead of val_size
    split: str = "tail"  # tail (the notebook's: last rows validate), random or stratified
    train_fraction: float = 0.3  # a scene's labelled pixels that train (stratified); the rest test (HybridSN: 30%)
    pca_bands: int = 0  # a scene's bands after PCA; 0: its record's (30 Indian Pines, 15 the others)
    normalize: str = "unit"  # unit ([0, 1], the notebook's /255), or the z-scores of fashion-mnist, mnist or cifar10
    augment: str = "none"  # none, flip-crop (random horizontal flip + 2-pixel shifted crop), or crop (digits: no flip)
    input_size: Optional[List[int]] = None  # resize inputs to H W (for full-size nets); None: the dataset's size
    in_channels: int = 0  # 0: the dataset's own; grey images can be repeated on more (for nets built for colour)
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # for momentum/sgd-with-momentum only
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant, step (x gamma every step_size epochs), cosine, onecycle (per step),
    # or plateau (x gamma when validation accuracy has not improved for plateau_patience epochs)
    step_size: int = 5
    gamma: float = 0.1
    plateau_patience: int = 2
    label_smoothing: float = 0.0  # the training loss's target: 1 - eps on the label, eps spread over all classes
    random_erasing: float = 0.0  # probability of erasing one random rectangle of a training image (Zhong et al.)
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights (checkpoint 'ema'), e.g. 0.999
    early_stop_patience: int = 0  # > 0: stop when validation accuracy has not improved for this many epochs
    init_from: Optional[str] = None  # start from these weights: a .pdparams/.safetensors file, a run or an export
    init_which: str = "best"  # the checkpoint of an init_from run folder
    init_skip_classifier: bool = False  # load everything but the last layer (fine-tuning to other classes)
    seed: int = 0
    device: str = "auto"  # auto (GPU if Paddle has CUDA), cpu or gpu
    threads: int = 0  # CPU threads for the fast conv/pool operators; 0: OMP_NUM_THREADS, else cores / processes
    amp: bool = False  # mixed precision (O1); GPU only
    precision: str = "fp32"  # fp32, or bf16: the CPU convolutions compute in bf16 (a CPU with avx512_bf16 or AMX)
    log_every: int = 100  # print progress every N steps
    keep_epochs: int = 0  # keep only the last N epoch_* checkpoints (0 keeps all)
    train_limit: int = 0  # use only the first N training images (0: all); for smoke runs
    test_limit: int = 0  # use only the first N test images (0: all)
    limit_sample: str = "first"  # first, or random: which rows train_limit / test_limit keep (seeded by seed)

    def validate(self) -> "RunConfig":
        choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "dataset": DATASETS, "augment": AUGMENTS,
                   "device": ("auto", "cpu", "gpu"), "split": ("tail", "random", "stratified"),
                   "normalize": NORMALIZE, "precision": ("fp32", "bf16"),
                   "limit_sample": ("first", "random")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"config {name}={getattr(self, name)!r}; expected one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size", "val_size", "log_every", "step_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config {name} must be >= 1, got {getattr(self, name)}")
        for name in ("keep_epochs", "train_limit", "test_limit", "weight_decay", "momentum", "threads",
                     "in_channels", "early_stop_patience", "plateau_patience"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"config {name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "gamma"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"config {name} must be a finite number > 0, got {getattr(self, name)}")
        if not 0 <= self.random_erasing <= 1:
            raise ConfigError(f"config random_erasing is a probability from 0 to 1, got {self.random_erasing}")
        for name in ("label_smoothing", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"config {name} must be from 0 to below 1, got {getattr(self, name)}")
        if self.init_skip_classifier and not self.init_from:
            raise ConfigError("config init_skip_classifier needs init_from (the weights to start from)")
        if not 0 <= self.seed < 2**63:  # Paddle's generator takes an unsigned 64-bit seed; numpy's 32 bits of it
            raise ConfigError(f"config seed must be an integer from 0 to 2**63 - 1, got {self.seed}")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 1):
            raise ConfigError(f"config input_size must be two positive integers H W, got {self.input_size}")
        info = registry.get_dataset(self.dataset)
        if (self.train_csv or self.test_csv) and (info.colour or info.kind != "images"):
            raise ConfigError(f"config train_csv/test_csv hold 28x28 grey images; dataset {self.dataset!r} "
                              "is read from its own files (drop the CSV options or pick fashion-mnist/mnist)")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"config val_fraction must be from 0 to below 1, got {self.val_fraction}")
        if not 0 < self.train_fraction < 1:
            raise ConfigError(f"config train_fraction must be between 0 and 1, got {self.train_fraction}")
        if self.pca_bands < 0:
            raise ConfigError(f"config pca_bands must be >= 0, got {self.pca_bands}")
        if info.kind == "scene":
            if self.in_channels not in (0, 1) or self.augment != "none" or self.normalize != "unit" \
                    or self.random_erasing:
                raise ConfigError(f"config for the scene {self.dataset}: its windows are one channel of PCA bands, "
                                  "whitened already; in_channels, augment, random_erasing and normalize keep their "
                                  "defaults")
            size = self.input_size
            if size is not None and (size[0] != size[1] or size[0] % 2 == 0):
                raise ConfigError(f"config input_size for a scene is its window, square and odd (the paper: "
                                  f"25 25), got {self.input_size}")
        native = info.shape[0]
        if self.in_channels and self.in_channels != native and native != 1:
            raise ConfigError(f"config in_channels={self.in_channels}: {self.dataset} images have {native} "
                              f"channels; only grey images can be repeated on more")
        return self

    def input_shape(self) -> Tuple[int, ...]:
        """(C, H, W) the net sees, or (C, bands, H, W) for a scene's windows: the dataset's shape unless
        in_channels / input_size (the window) / pca_bands change it."""
        shape = registry.get_dataset(self.dataset).shape
        h, w = self.input_size or shape[-2:]
        bands = (self.pca_bands or shape[1],) if len(shape) == 4 else ()
        return (self.in_channels or shape[0], *bands, int(h), int(w))

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "config") -> "RunConfig":
        """A validated config from JSON-like data; every key is type-checked first."""
        try:
            config = from_dict(cls, data, source)
        except SchemaError as exc:
            raise ConfigError(str(exc)) from None
        try:
            return config.validate()
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def with_absolute_paths(self) -> "RunConfig":
        """Data paths resolved against the current folder, so the saved config works from anywhere."""
        resolve = lambda p: None if p is None else str(Path(p).expanduser().resolve())  # noqa: E731
        return dataclasses.replace(self, data_dir=resolve(self.data_dir), train_csv=resolve(self.train_csv),
                                   test_csv=resolve(self.test_csv), init_from=resolve(self.init_from))

    def save(self, path: Union[str, Path]) -> None:
        from ..fileio import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Union[str, Path]) -> "RunConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no config.json here; is this a run folder?") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, not a config.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, str(path))

    def differences(self, other: "RunConfig", ignore: Sequence[str] = ()) -> Dict[str, tuple]:
        """Fields whose values differ, as {name: (self's, other's)}."""
        return {f.name: (getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
                if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_args(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """One flag per RunConfig field (``--batch-size``...), defaulting to None so only given flags override."""
    hints = get_type_hints(RunConfig)
    group = parser.add_argument_group("run configuration (overrides)")
    for f in fields(RunConfig):
        if f.name in skip:
            continue
        hint = hints[f.name]
        if get_origin(hint) is Union:  # Optional[X]
            hint = [a for a in get_args(hint) if a is not type(None)][0]
        default = f.default if f.default is not dataclasses.MISSING else None
        if hint is bool:
            group.add_argument(_flag(f.name), dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                               help=f"default: {default}")
        elif get_origin(hint) in (list, List):
            group.add_argument(_flag(f.name), dest=f.name, default=None, nargs="+",
                               type=get_args(hint)[0], metavar="N", help=f"default: {default}")
        else:
            group.add_argument(_flag(f.name), dest=f.name, default=None, type=hint, help=f"default: {default}")


def config_from_args(args: argparse.Namespace, base: Optional[RunConfig] = None, **defaults) -> RunConfig:
    """``base`` (or RunConfig(**defaults)) with every flag the user gave applied on top."""
    config = dataclasses.replace(base) if base is not None else RunConfig(**defaults)
    overrides = given_overrides(args)
    return dataclasses.replace(config, **overrides).validate()


def given_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    names = {f.name for f in fields(RunConfig)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
