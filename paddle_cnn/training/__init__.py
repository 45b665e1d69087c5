"""Training through ``paddle.Model``: typed run config, run folders, safe checkpoints, exact resume."""
from .checkpoint import CheckpointError, load_optimizer, load_weights, read_state, save_checkpoint
from .config import ConfigError, RunConfig, add_config_args, config_from_args
from .data import RunData, build_data
from .evaluation import classification_metrics, confusion_matrix, softmax
from .trainer import (
    RunDirError, Trainer, epoch_seed, evaluate_network, load_model, predict_logits, seed_everything, select_device,
    train_and_evaluate,
)

__all__ = [
    "CheckpointError", "load_optimizer", "load_weights", "read_state", "save_checkpoint", "ConfigError", "RunConfig",
    "add_config_args", "config_from_args", "RunData", "build_data", "classification_metrics",
    "confusion_matrix", "softmax", "RunDirError", "Trainer", "epoch_seed", "evaluate_network", "load_model", "predict_logits", "seed_everything",
    "select_device", "train_and_evaluate",
]
