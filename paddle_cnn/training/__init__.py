"""Training through ``paddle.Model``: typed run config, locked run folders, safe checkpoints, exact resume."""
from .callbacks import epoch_seed, seed_everything
from .checkpoint import CheckpointError, load_optimizer, load_weights, read_state, save_checkpoint
from .config import ConfigError, RunConfig, add_config_args, config_from_args
from .data import RunData, build_data
from .evaluation import classification_metrics, confusion_matrix, predict_logits, softmax
from .layout import RunLayout
from .rundir import CheckpointState, EpochRow, RunDir, RunDirError, RunState
from .progress import Job
from .trainer import Trainer, evaluate_network, load_model, plan_job, select_device, train_and_evaluate

__all__ = [
    "Job", "plan_job",
    "epoch_seed", "seed_everything", "CheckpointError", "load_optimizer", "load_weights", "read_state",
    "save_checkpoint", "ConfigError", "RunConfig", "add_config_args", "config_from_args", "RunData", "build_data",
    "classification_metrics", "confusion_matrix", "predict_logits", "softmax", "CheckpointState", "EpochRow",
    "RunDir", "RunDirError", "RunLayout", "RunState", "Trainer", "evaluate_network", "load_model", "select_device",
    "train_and_evaluate",
]
