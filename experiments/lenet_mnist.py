"""The LeNet tutorial: LeNet on MNIST through paddle.Model, saved, reloaded and resumed.

    python -m experiments.lenet_mnist [--out runs/lenet_mnist]
    python -m experiments.lenet_mnist --recipe ours     # runs/lenet_mnist_ours

Fits 5 epochs (validation every epoch), evaluates, predicts and plots test images, then loads the
saved checkpoint into a fresh model (same accuracy), resumes training for 2 more epochs in the
same process, and evaluates again. Prints both evaluations.

``--recipe ours`` trains the same net further: z-scored inputs, shifted crops (no mirroring: a
mirrored digit is not a digit), AdamW at 3e-3 with weight decay 5e-4, x0.3 every 7 epochs, batch
128, 28 epochs (+2 resumed), and a moving average of the weights (decay 0.999, evaluated beside).
A step schedule because the resume adds epochs, which a one-cycle or cosine schedule (whose shape
depends on the length) would refuse. (18 epochs, x0.3 every 6, no average: test 0.9896.)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Union

from paddle_cnn.training import (
    RunDir, add_config_args, build_data, config_from_args, evaluate_network, load_model, train_and_evaluate,
)
from paddle_cnn.entry import run_command
from paddle_cnn.training.parallel import add_processes_arg, is_main_process, relaunch
from paddle_cnn.fileio import atomic_write_text

DEFAULTS = dict(net="lenet_subclassed", dataset="mnist", epochs=5, batch_size=64, optimizer="adam", lr=1e-3,
                normalize="unit")
RECIPES = {"tutorial": DEFAULTS,
           "ours": dict(DEFAULTS, epochs=28, batch_size=128, optimizer="adamw", lr=3e-3, weight_decay=5e-4,
                        schedule="step", step_size=7, gamma=0.3, augment="crop", normalize="mnist",
                        ema_decay=0.999)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.lenet_mnist", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="tutorial",
                        help="the tutorial's (default) or ours, which trains the same LeNet to >= 0.99")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default: runs/lenet_mnist, or runs/lenet_mnist_ours)")
    parser.add_argument("--resume-epochs", type=int, default=2, help="epochs to add when resuming")
    parser.add_argument("--overwrite", action="store_true", help="start again in a folder that holds a run")
    add_processes_arg(parser)
    add_config_args(parser, skip=("dataset",))
    return parser


def main(argv: Optional[List[str]] = None) -> Union[dict, int]:
    args = build_parser().parse_args(argv)
    status = relaunch(args.processes, Path(__file__), argv, getattr(args, "device", None) or "auto")
    if status is not None:  # the job ran under paddle.distributed.launch; its exit status
        return status
    config = config_from_args(args, **RECIPES[args.recipe])
    args.out = args.out or Path("runs/lenet_mnist" if args.recipe == "tutorial" else "runs/lenet_mnist_ours")
    RunDir(args.out, writer=is_main_process()).check_new(args.overwrite)  # refused before anything prints
    data = build_data(config)
    print(f"data: {len(data.train)} train / {len(data.val)} validation / {len(data.test)} test images")

    _, first = train_and_evaluate(config, args.out, overwrite=args.overwrite, data=data)
    print(f"\nevaluation after {first['epochs']} epochs: test loss {first['test']['loss']:.4f}, "
          f"test acc {first['test']['acc']:.4f}")

    net, _, state = load_model(args.out, "latest")
    reloaded = evaluate_network(net, data.test)
    print(f"fresh model loaded from checkpoints/latest (epoch {state.run.epoch}): test acc {reloaded['acc']:.4f}")
    if abs(reloaded["acc"] - first["test"]["acc"]) > 1e-9:
        raise RuntimeError("the reloaded model does not reproduce the saved model's accuracy")

    more = dataclasses.replace(config, epochs=config.epochs + args.resume_epochs)
    _, second = train_and_evaluate(more, args.out, resume=True, data=data)
    print(f"\nevaluation after {first['epochs']} epochs: test loss {first['test']['loss']:.4f}, "
          f"test acc {first['test']['acc']:.4f}")
    print(f"evaluation after resuming to {second['epochs']} epochs: test loss {second['test']['loss']:.4f}, "
          f"test acc {second['test']['acc']:.4f}")
    if second.get("ema"):  # the recipe keeps a moving average of the weights: checkpoints/ema
        print(f"moving average of the weights after {second['epochs']} epochs: test loss "
              f"{second['ema']['test']['loss']:.4f}, test acc {second['ema']['test']['acc']:.4f}")
    summary = {"first": first, "reloaded_test_acc": reloaded["acc"], "resumed": second}
    if is_main_process():
        atomic_write_text(Path(args.out) / "lenet_mnist.json", json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    raise SystemExit(run_command(main, prog="lenet_mnist"))
