"""The Fashion-MNIST notebook: a standard CNN against the same CNN with dilated convolutions.

    python -m experiments.dilated_vs_standard [--epochs 10] [--out runs/dilated_vs_standard]

Trains ``standard_cnn`` (Adam, lr 3e-4) and ``dilated_cnn`` (Adam, lr 1e-4), batch 64, 10 epochs on
the 59k/1k split, evaluates both on the 1k validation and 10k test sets, and writes into ``--out``:
one run folder per net, comparison.{md,csv,json}, curves.png, sample_grid.png and predictions.png.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import paddle

from paddle_cnn import nets, report
from paddle_cnn.training import (
    RunConfig, RunDir, RunLayout, add_config_args, build_data, plan_job, softmax, train_and_evaluate)
from paddle_cnn.training import plots
from paddle_cnn.training.config import given_overrides
from paddle_cnn.training.parallel import add_processes_arg, is_main_process, relaunch
from paddle_cnn.entry import run_command
from paddle_cnn.fileio import atomic_write_text

# The notebook's recipe: the only difference between the two runs is the net and its learning rate.
RECIPES = {"standard_cnn": 3e-4, "dilated_cnn": 1e-4}
DEFAULTS = dict(dataset="fashion-mnist", epochs=10, batch_size=64, optimizer="adam", val_size=1000, split="tail")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.dilated_vs_standard",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/dilated_vs_standard"), help="experiment folder")
    parser.add_argument("--resume", type=Path, default=None, metavar="OUT",
                        help="continue an interrupted experiment folder (each net from its latest checkpoint)")
    parser.add_argument("--overwrite", action="store_true", help="start again in a folder that holds runs")
    parser.add_argument("--standard-lr", type=float, default=RECIPES["standard_cnn"])
    parser.add_argument("--dilated-lr", type=float, default=RECIPES["dilated_cnn"])
    add_processes_arg(parser)
    add_config_args(parser, skip=("net", "lr"))
    return parser


def run_configs(args) -> List[RunConfig]:
    lrs = {"standard_cnn": args.standard_lr, "dilated_cnn": args.dilated_lr}
    overrides = given_overrides(args)
    configs = []
    for net, lr in lrs.items():
        saved = RunLayout.at(args.resume / net).config if args.resume else None
        if saved is not None and saved.is_file():
            base = RunConfig.load(saved)
        else:
            base = RunConfig(net=net, lr=lr, **DEFAULTS)
        configs.append(dataclasses.replace(base, **overrides).validate())
    return configs


def main(argv: Optional[List[str]] = None) -> Union[dict, int]:
    args = build_parser().parse_args(argv)
    status = relaunch(args.processes, Path(__file__), argv, getattr(args, "device", None) or "auto")
    if status is not None:  # the job ran under paddle.distributed.launch; its exit status
        return status
    out = args.resume or args.out
    configs = run_configs(args)
    for config in configs:  # refused before anything is loaded or printed
        if args.resume is None or not RunLayout.at(out / config.net).config.is_file():
            RunDir(out / config.net, writer=is_main_process()).check_new(args.overwrite)
    job = plan_job(configs)
    data = build_data(configs[0])  # both nets see exactly the same data
    print(f"data: {len(data.train)} train / {len(data.val)} validation / {len(data.test)} test images")

    results, logits, histories = [], {}, {}
    for config in configs:
        print(f"\n=== {config.net} (Adam lr {config.lr:g}, batch {config.batch_size}, {config.epochs} epochs)")
        shape = config.input_shape()
        paddle.summary(nets.create(config.net, in_channels=shape[0], input_size=shape[1:]),
                       (config.batch_size, *shape))
        run_dir = out / config.net
        resume = args.resume is not None and RunLayout.at(run_dir).config.is_file()
        trainer, res = train_and_evaluate(config, run_dir, resume=resume, overwrite=args.overwrite, data=data,
                                          job=job)
        results.append(res)
        logits[config.net] = trainer.predictions["test"]  # in memory: on rank > 0 no file was written
        histories[config.net] = trainer.state.history

    table = report.markdown_table(results)
    if not is_main_process():  # data-parallel run: only rank 0 writes
        return {"results": results, "out": str(out)}
    atomic_write_text(out / "comparison.md", table + "\n")
    atomic_write_text(out / "comparison.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "comparison.csv", report.csv_text(results))
    plots.training_curves(histories, out / "curves.png", title="standard vs dilated CNN on Fashion-MNIST")
    plots.sample_grid(data.train.images, data.train.labels, data.class_names, out / "sample_grid.png")
    pick = np.random.default_rng(configs[0].seed).choice(len(data.test), size=18, replace=False)
    plots.comparison_predictions(data.test.images[pick], data.test.labels[pick],
                                 {net: softmax(v[pick]) for net, v in logits.items()}, data.class_names,
                                 out / "predictions.png")
    print("\n" + table)
    print(f"\nsaved: {out}/comparison.md, curves.png, sample_grid.png, predictions.png and one run folder per net")
    return {"results": results, "out": str(out)}


if __name__ == "__main__":
    raise SystemExit(run_command(main, prog="dilated_vs_standard"))
