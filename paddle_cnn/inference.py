"""Use a trained model: predict from a run folder (dygraph) or from an export (Paddle Inference only).

``export_run`` writes ``model.json``/``model.pdiparams`` with ``paddle.jit.save`` (dynamic batch)
and ``paddle_cnn_export.json``: the net, the checkpoint it came from with its accuracy, and the
input contract (shape, normalisation, class names) that ``predict`` reads. The exported files are
Paddle's inference format; reading them does not unpickle anything.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import paddle

from . import datasets as D
from .contract import InputContract
from .errors import UserError
from .fileio import atomic_write_text
from .training.evaluation import predict_logits, softmax
from .training.layout import EXPORT_META, RunLayout

PathLike = Union[str, Path]
EXPORT_FORMAT = "paddle_cnn.export.v2"  # v2: the input contract under "input"


def _recorded_test_acc(run_dir: Path, epoch: int) -> Optional[float]:
    """The test accuracy results.json records for this checkpoint, if the run was finished at it."""
    try:
        results = json.loads(RunLayout.at(run_dir).results.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(results, dict):
        return None
    for entry in (results, results.get("best") or {}):
        if isinstance(entry, dict) and entry.get("epoch", results.get("epochs")) == epoch \
                and isinstance(entry.get("test"), dict):
            return entry["test"].get("acc")
    return None


def _meta_from_run(config, state, which: str, run_dir: Path) -> Dict[str, Any]:
    run = state.run
    epoch_row = next((r for r in run.history if r.epoch == run.epoch), None)
    return {
        "format": EXPORT_FORMAT,
        "net": config.net,
        "dataset": config.dataset,
        "classes": {lang: list(names) for lang, names in D.get_dataset(config.dataset).classes.items()},
        "input": state.input.to_dict(),
        "precision": config.precision,
        "source": {"run_dir": str(Path(run_dir).absolute()), "checkpoint": which, "epoch": run.epoch,
                   "val_acc": epoch_row.val_acc if epoch_row else None,
                   "test_acc": _recorded_test_acc(Path(run_dir), run.epoch),
                   "best_val_acc": run.best_val_acc, "best_epoch": run.best_epoch},
    }


def export_run(run_dir: PathLike, which: str = "best", out: Optional[PathLike] = None,
               overwrite: bool = False) -> Path:
    """Export ``checkpoints/{which}`` of a run for Paddle Inference; returns the export folder."""
    from paddle.static import InputSpec

    from .training import load_model
    from .training.warmstart import export_name_table

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else RunLayout.at(run_dir).export
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file, not an export folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} already holds files; pass --overwrite to replace the export")
    net, config, state = load_model(run_dir, which)
    meta = _meta_from_run(config, state, which, run_dir)
    out.mkdir(parents=True, exist_ok=True)
    shape = list(state.input.shape)
    paddle.jit.save(net, str(out / "model"), input_spec=[InputSpec([None, *shape], "float32", "image")])
    # Paddle names the exported tensors param_0, param_1...: the table maps them back to the net's
    # names, so the export can seed another run (init_from).
    exported = {k: v.numpy() for k, v in paddle.jit.load(str(out / "model")).state_dict().items()}
    meta["parameters"] = export_name_table(exported, net)
    atomic_write_text(out / EXPORT_META, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return out


class DygraphPredictor:
    """Predictions of a run's checkpoint through the training code's network."""

    def __init__(self, run_dir: PathLike, which: str = "best"):
        from .training import load_model

        self.net, config, state = load_model(run_dir, which)
        self.meta = _meta_from_run(config, state, which, Path(run_dir))
        self.contract = state.input

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 grey (N, H, W) at the contract's size -> class probabilities (N, classes)."""
        return self.probabilities_of_inputs(self.contract.normalize_images(images))

    def probabilities_of_inputs(self, x: np.ndarray) -> np.ndarray:
        """float32 inputs already in the contract's shape and scale (a scene's windows) -> probabilities."""
        return softmax(predict_logits(self.net, x))


def bf16_native() -> bool:
    """Whether this CPU does bf16 arithmetic natively, as Paddle Inference decides it (avx512_bf16 or AMX)."""
    from paddle.base import core

    return bool(getattr(core, "supports_bfloat16_fast_performance", lambda: False)())


class InferencePredictor:
    """Predictions of an exported model through Paddle Inference (oneDNN on CPU), without paddle_cnn.nets."""

    def __init__(self, export_dir: PathLike, threads: Optional[int] = None):
        from paddle import inference

        export_dir = Path(export_dir)
        meta_path = export_dir / EXPORT_META
        try:
            self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{meta_path}: unreadable export metadata ({exc})") from None
        if not isinstance(self.meta, dict) or self.meta.get("format") != EXPORT_FORMAT:
            raise UserError(f"{meta_path}: not a {EXPORT_FORMAT} export")
        self.contract = InputContract.from_dict(self.meta.get("input"), f"{meta_path}: key 'input'")
        model_file = next((export_dir / n for n in ("model.json", "model.pdmodel") if (export_dir / n).is_file()), None)
        if model_file is None or not (export_dir / "model.pdiparams").is_file():
            raise UserError(f"{export_dir}: model.json (or model.pdmodel) and model.pdiparams are missing")
        config = inference.Config(str(model_file), str(export_dir / "model.pdiparams"))
        config.disable_gpu()  # exports are for CPU serving: Paddle Inference's CPU path with oneDNN
        config.enable_mkldnn()
        # A bf16 run's export runs oneDNN's bf16 kernels where the CPU has native bf16 (Paddle's check).
        self.bf16 = self.meta.get("precision") == "bf16" and bf16_native()
        if self.bf16:
            config.enable_mkldnn_bfloat16()
        from .fast import available_cores

        config.set_cpu_math_library_num_threads(threads or available_cores())  # the affinity, not every core
        config.disable_glog_info()
        self._predictor = inference.create_predictor(config)
        self._input = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        self._output = self._predictor.get_output_handle(self._predictor.get_output_names()[0])

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.probabilities_of_inputs(self.contract.normalize_images(images))

    def probabilities_of_inputs(self, x: np.ndarray) -> np.ndarray:
        self._input.reshape(list(x.shape))
        self._input.copy_from_cpu(np.ascontiguousarray(x))
        self._predictor.run()
        return softmax(self._output.copy_to_cpu())


def open_predictor(path: PathLike, which: str = "best"):
    """An :class:`InferencePredictor` for an export folder, a :class:`DygraphPredictor` for a run folder."""
    path = Path(path)
    if (path / EXPORT_META).is_file():
        return InferencePredictor(path)
    if RunLayout.at(path).config.is_file():
        return DygraphPredictor(path, which)
    raise UserError(f"{path}: neither a run folder (config.json) nor an export ({EXPORT_META})")
