"""The classic CNN zoo trained and compared on Fashion-MNIST, one documented recipe per network.

    python -m experiments.classic_zoo [--nets lenet_bn resnet18_small ...] [--out runs/classic_zoo]

Each net trains in its own run folder ``OUT/NET`` (59k/1k split, whole-set validation every
epoch, final test on the 10k test images). Afterwards the experiment writes, from every finished
run folder in OUT: zoo.md / zoo.csv (params, FLOPs, seconds per epoch, accuracy, command),
zoo.json, curves.png (validation accuracy of every net per epoch) and cost_accuracy.png.
A folder that already holds a finished net is skipped; an unfinished one is resumed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Dict, List, Optional, Union

from paddle_cnn import analysis, nets, report
from paddle_cnn.entry import run_command
from paddle_cnn.fileio import atomic_write_text
from paddle_cnn.training import RunConfig, RunDir, add_config_args, build_data, plots, train_and_evaluate
from paddle_cnn.training.config import given_overrides
from paddle_cnn.training.parallel import add_processes_arg, is_main_process, relaunch

# Shared by every recipe: z-scored inputs, AdamW with a one-cycle schedule (warm-up then
# annealing, which converges in few epochs), batch 128 as Dive into Deep Learning uses.
COMMON = dict(dataset="fashion-mnist", normalize="fashion-mnist", optimizer="adamw", schedule="onecycle",
              weight_decay=5e-4, batch_size=128, val_size=1000, split="tail")

# Per net: what differs, and why. Epoch counts are set by this 2-core CPU's budget (the 28x28
# variants train at about 70-150 images/s here, 7-14 minutes per epoch; see the table's
# s/epoch), not by convergence: more epochs (`--epochs 10`) would raise every accuracy.
RECIPES: Dict[str, dict] = {
    "lenet_bn": dict(lr=3e-3, epochs=10),  # 4,800 img/s: cheap enough for 10 epochs
    "alexnet_small": dict(lr=1e-3, epochs=5),  # no batch norm: a lower peak lr
    "vgg11_small": dict(lr=1e-3, epochs=4),
    "nin_small": dict(lr=1e-3, epochs=5),
    "googlenet_small": dict(lr=2e-3, epochs=3),  # auxiliary heads (0.3 each) help the deep plain net
    "inception_v2_small": dict(lr=3e-3, epochs=3),
    "resnet18_small": dict(lr=3e-3, epochs=4, augment="flip-crop"),  # BN + residuals take a high lr
    "resnext_small": dict(lr=3e-3, epochs=5),
    "mobilenet_v1_small": dict(lr=3e-3, epochs=5),
}
# The nets trained when --nets is not given: the tutorials' reference points (Dive into Deep
# Learning reports AlexNet, VGG-11, GoogLeNet and ResNet-18) plus LeNet with batch norm.
DEFAULT_NETS = ["lenet_bn", "alexnet_small", "vgg11_small", "googlenet_small", "resnet18_small"]


def recipe(net: str) -> RunConfig:
    """The documented recipe for ``net`` (any registered 28x28 net; unknown ones get Adam 1e-3, 5 epochs)."""
    nets.get_info(net)  # unknown names fail here, listing the valid ones
    return RunConfig(net=net, **{**COMMON, **RECIPES.get(net, dict(lr=1e-3, epochs=5))}).validate()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.classic_zoo", description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=DEFAULT_NETS, metavar="NET",
                        help=f"nets to train, in order (default: {' '.join(DEFAULT_NETS)})")
    parser.add_argument("--out", type=Path, default=Path("runs/classic_zoo"), help="experiment folder")
    parser.add_argument("--overwrite", action="store_true", help="retrain nets whose folders already hold runs")
    parser.add_argument("--list-recipes", action="store_true", help="print each net's recipe and exit")
    parser.add_argument("--table-only", action="store_true", help="only rebuild the table and plots from OUT")
    add_processes_arg(parser)
    add_config_args(parser, skip=("net", "dataset"))
    return parser


def finished(run_dir: Path) -> bool:
    return (run_dir / "results.json").is_file()


def write_outputs(out: Path) -> List[dict]:
    """The zoo table and plots, from every finished run folder in ``out`` (cheapest net first)."""
    results = report.load_results(sorted(p for p in out.iterdir() if finished(p)))
    results.sort(key=lambda r: (r.get("flops") or 0, r["net"]))  # as python -m paddle_cnn.report --columns zoo
    if not results:
        return results
    atomic_write_text(out / "zoo.md", report.markdown_table(results, report.ZOO_COLUMNS) + "\n")
    atomic_write_text(out / "zoo.csv", report.csv_text(results, report.ZOO_COLUMNS))
    atomic_write_text(out / "zoo.json", json.dumps(results, indent=2) + "\n")
    histories = {r["net"]: RunDir(r["run_dir"], writer=False).read_checkpoint("latest").run.history
                 for r in results}
    plots.training_curves(histories, out / "curves.png", title="classic zoo on Fashion-MNIST")
    plots.cost_accuracy(results, out / "cost_accuracy.png")
    return results


def main(argv: Optional[List[str]] = None) -> Union[dict, int]:
    args = build_parser().parse_args(argv)
    status = relaunch(args.processes, Path(__file__), argv)
    if status is not None:  # the job ran under paddle.distributed.launch; its exit status
        return status
    overrides = given_overrides(args)
    configs = [dataclasses.replace(recipe(n), **overrides).validate() for n in args.nets]
    if args.list_recipes:
        for c in configs:
            print(f"{c.net}: {c.optimizer} lr {c.lr:g} ({c.schedule}), weight decay {c.weight_decay:g}, "
                  f"batch {c.batch_size}, {c.epochs} epochs, augment {c.augment}, normalize {c.normalize}")
        return {"configs": [c.to_dict() for c in configs]}
    out = args.out
    if not args.table_only:
        data = build_data(configs[0])  # every recipe uses the same data settings unless overridden
        print(f"data: {len(data.train)} train / {len(data.val)} validation / {len(data.test)} test images")
        for config in configs:
            run_dir = out / config.net
            if finished(run_dir) and not args.overwrite:
                print(f"\n=== {config.net}: finished already in {run_dir}, skipped (--overwrite retrains)")
                continue
            info = nets.get_info(config.net)
            cost = analysis.count_flops(nets.create(config.net, input_size=config.input_size or info.input_size[1:]),
                                        (config.in_channels, *(config.input_size or info.input_size[1:])))
            print(f"\n=== {config.net}: {info.description}\n    {analysis.human(cost.flops)} FLOPs per image; "
                  f"{config.optimizer} lr {config.lr:g} {config.schedule}, {config.epochs} epochs, "
                  f"augment {config.augment}")
            same_data = {k: v for k, v in config.to_dict().items() if k in DATA_KEYS} == \
                {k: v for k, v in configs[0].to_dict().items() if k in DATA_KEYS}
            resume = (run_dir / "config.json").is_file() and not args.overwrite
            train_and_evaluate(config, run_dir, resume=resume, overwrite=args.overwrite,
                               data=data if same_data else None)
    results = write_outputs(out) if out.is_dir() and is_main_process() else []  # only rank 0 writes
    if results:
        print("\n" + report.markdown_table(results, report.ZOO_COLUMNS))
        print(f"\nsaved: {out}/zoo.md, zoo.csv, zoo.json, curves.png, cost_accuracy.png and one run folder per net")
    return {"results": results, "out": str(out)}


# Config fields that decide the datasets; nets whose recipes agree on them share one loaded copy.
DATA_KEYS = ("dataset", "data_dir", "train_csv", "test_csv", "verify_md5", "download", "val_size", "split",
             "normalize", "augment", "input_size", "train_limit", "test_limit", "seed")


if __name__ == "__main__":
    raise SystemExit(run_command(main, prog="classic_zoo"))
