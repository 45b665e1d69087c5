"""The tf.keras tutorial's setting: AlexNet, VGG-16, GoogLeNet and ResNet-18 on MNIST resized to 227/224.

    python -m experiments.keras_tutorial [--nets alexnet vgg16 googlenet resnet18] [--out runs/keras_tutorial]
    python -m experiments.keras_tutorial --part full-alexnet     # all of MNIST, AlexNet at 227, 3 epochs

Three parts, each net in its own run folder ``OUT/PART/NET``:

- ``demo``: the tutorial as written (seeded, so it repeats): MNIST resized to 227x227 (AlexNet) or
  224x224 (square images: resizing "with padding" adds none), 256 random training images of which
  the last 10% validate, 3 epochs of plain SGD at lr 0.01 in batches of 128, then 128 random test
  images. That is 2 optimizer steps an epoch, 6 in all: too few to train any of them, so the
  training loss stays near ln 10 = 2.30. The tutorial prints chance (0.078-0.102) for all four;
  here the plain AlexNet and VGG-16 move partly off it on 128 images while GoogLeNet and ResNet-18
  (whose batch-norm running statistics have seen 6 updates) stay there. The table shows the steps
  and the final training loss beside each accuracy.
- ``learns``: the same images and nets, changing only what the demo gets wrong: batches of 16 (15
  steps an epoch), 12 epochs, AdamW with a one-cycle schedule (peak 3e-4 for AlexNet and VGG-16,
  which have no batch norm, 1e-3 for GoogLeNet and ResNet-18), weight decay 5e-4. 180 steps on the
  same 230 images, affordable on a CPU (VGG-16 trains at about 2 images/s on 2 cores, the slowest).
- ``full-alexnet``: the tutorial's other figure: AlexNet on all 60k MNIST images (54k train / 6k
  validation) at 227 for its 3 epochs of SGD lr 0.01 batch 128, tested on the whole 10k test set,
  against the tutorial's 0.8395 (1 h 30 min on one core of an AVX-512 AMD EPYC with ``--precision
  bf16``, 33 images/s; 0.9873 test accuracy).

Afterwards ``OUT/keras_tutorial.{md,json}`` and ``OUT/keras_tutorial.png`` (test accuracy per net and
part, chance drawn) are written from every finished run folder; ``--table-only --out
docs/results/keras_tutorial`` rebuilds them from the results saved there.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Union

from paddle_cnn import report
from paddle_cnn.entry import run_command
from paddle_cnn.errors import ConfigError
from paddle_cnn.fileio import atomic_write_text
from paddle_cnn.training import RunConfig, RunDir, RunLayout, add_config_args, build_data, plan_job, train_and_evaluate
from paddle_cnn.training.config import given_overrides

NETS = ["alexnet", "vgg16", "googlenet", "resnet18"]
PARTS = ("demo", "learns", "full-alexnet")
SIZE = {"alexnet": [227, 227]}  # the others: 224
# The tutorial's demo, as it is written.
DEMO = dict(dataset="mnist", normalize="unit", train_limit=256, test_limit=128, limit_sample="random",
            val_fraction=0.1, split="tail", epochs=3, batch_size=128, optimizer="sgd", lr=0.01, augment="none")
LEARNS = dict(DEMO, epochs=12, batch_size=16, optimizer="adamw", schedule="onecycle", weight_decay=5e-4)
FULL = dict(DEMO, train_limit=0, test_limit=0, limit_sample="first")
TUTORIAL_TEST_ACC = {"demo": (0.078, 0.102), "full-alexnet": 0.8395, "vgg16-full": 0.8855}


def config_for(part: str, net: str) -> RunConfig:
    base = {"demo": DEMO, "learns": LEARNS, "full-alexnet": FULL}[part]
    lr = {"learns": 1e-3 if net in ("googlenet", "resnet18") else 3e-4}.get(part, base["lr"])
    return RunConfig(net=net, input_size=SIZE.get(net, [224, 224]), **dict(base, lr=lr)).validate()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.keras_tutorial", description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=NETS, choices=NETS, metavar="NET",
                        help=f"nets of the demo and learns parts (default: {' '.join(NETS)})")
    parser.add_argument("--part", nargs="+", default=["demo", "learns"], choices=PARTS,
                        help="parts to run (default: demo learns; full-alexnet takes hours)")
    parser.add_argument("--out", type=Path, default=Path("runs/keras_tutorial"), help="experiment folder")
    parser.add_argument("--overwrite", action="store_true", help="retrain nets whose folders already hold runs")
    parser.add_argument("--table-only", action="store_true", help="only rebuild the table and plot from OUT")
    add_config_args(parser, skip=("net",))
    return parser


def finished(run_dir: Path) -> bool:
    return RunLayout.at(run_dir).results.is_file()


def collect(out: Path) -> List[dict]:
    """Every finished run under OUT/PART/NET, with its part; or, where OUT holds saved results
    (``python -m paddle_cnn.report --save OUT/PART ...``: OUT/PART/NET.json), those."""
    rows = []
    for part in PARTS:
        for run in sorted((out / part).glob("*")) if (out / part).is_dir() else []:
            run_folder = run.name in NETS and finished(run)
            if run_folder or (run.suffix == ".json" and run.stem in NETS):
                rows += [dict(r, part=part) for r in report.load_results([run])]
    return rows


def batch_size_of(row: dict) -> int:
    """The run's batch size: its config.json, or the part's recipe where only saved results remain."""
    config = Path(row["run_dir"]) / "config.json"
    return (RunConfig.load(config) if config.is_file() else config_for(row["part"], row["net"])).batch_size


def table(rows: List[dict]) -> str:
    lines = ["| part | net | input | train images | epochs | optimizer steps | final train loss | test acc "
             "(images) | tutorial |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        train_images = r["images"]["train"]
        steps = math.ceil(train_images / batch_size_of(r)) * r["epochs"]
        tutorial = {"demo": "0.078-0.102 (chance)", "full-alexnet": "0.8395"}.get(r["part"], "-")
        lines.append(f"| {r['part']} | {r['net']} | {r['input_shape'][-1]} | {train_images} | {r['epochs']} | "
                     f"{steps} | {report.final_train_loss(r):.3f} | {r['test']['acc']:.4f} ({r['test']['n']}) | "
                     f"{tutorial} |")
    return "\n".join(lines)


def plot(rows: List[dict], path: Path) -> None:
    from paddle_cnn.training.plots import save, subplots

    parts = [p for p in PARTS if any(r["part"] == p for r in rows)]
    fig, ax = subplots(figsize=(2.2 + 1.6 * len(rows), 4))
    labels = [f"{r['net']}\n{r['part']}" for r in rows]
    colours = {p: f"C{i}" for i, p in enumerate(PARTS)}
    ax.bar(range(len(rows)), [r["test"]["acc"] for r in rows], color=[colours[r["part"]] for r in rows])
    for i, r in enumerate(rows):
        ax.text(i, r["test"]["acc"] + 0.01, f"{r['test']['acc']:.3f}", ha="center", fontsize=8)
    ax.axhline(0.1, color="grey", linestyle="--", linewidth=1, label="chance (0.1)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    for i, r in enumerate(rows):  # the tutorial's own test accuracy where it printed one for all of MNIST
        if r["part"] == "full-alexnet":
            ax.hlines(TUTORIAL_TEST_ACC["full-alexnet"], i - 0.4, i + 0.4, color="black", linewidth=2)
            ax.text(i, TUTORIAL_TEST_ACC["full-alexnet"] - 0.05, f"tutorial {TUTORIAL_TEST_ACC['full-alexnet']}",
                    ha="center", fontsize=8, color="white")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"the tf.keras tutorial's nets on MNIST at 224/227: {', '.join(parts)}")
    save(fig, path)


def write_outputs(out: Path) -> List[dict]:
    rows = collect(out) if out.is_dir() else []
    if not rows:
        return rows
    atomic_write_text(out / "keras_tutorial.md", table(rows) + "\n")
    atomic_write_text(out / "keras_tutorial.json", json.dumps(rows, indent=2) + "\n")
    plot(rows, out / "keras_tutorial.png")
    return rows


def main(argv: Optional[List[str]] = None) -> Union[dict, int]:
    args = build_parser().parse_args(argv)
    overrides = given_overrides(args)
    jobs = [(part, net) for part in args.part for net in (["alexnet"] if part == "full-alexnet" else args.nets)]
    configs = {job: dataclasses.replace(config_for(*job), **overrides).validate() for job in jobs}
    if not args.table_only:
        for (part, net), config in configs.items():
            if not RunLayout.at(args.out / part / net).config.is_file():
                RunDir(args.out / part / net).check_new(args.overwrite)
        todo = {j: c for j, c in configs.items() if args.overwrite or not finished(args.out / j[0] / j[1])}
        for (part, net) in configs:
            if (part, net) not in todo:
                print(f"=== {part}/{net}: finished already, skipped (--overwrite retrains)")
        job = plan_job(list(todo.values()))
        loaded: Dict[tuple, object] = {}
        for (part, net), config in todo.items():
            key = (part, tuple(config.input_size))
            if key not in loaded:
                loaded[key] = build_data(config)
            data = loaded[key]
            steps = math.ceil(len(data.train) / config.batch_size)
            print(f"\n=== {part}/{net}: {len(data.train)} train / {len(data.val)} validation / {len(data.test)} test "
                  f"images at {config.input_size[0]}x{config.input_size[1]}; {config.optimizer} lr {config.lr:g}, "
                  f"batch {config.batch_size} = {steps} steps an epoch, {config.epochs} epochs")
            run_dir = args.out / part / net
            resume = RunLayout.at(run_dir).config.is_file() and not args.overwrite
            train_and_evaluate(config, run_dir, resume=resume, overwrite=args.overwrite, data=data, job=job)
    rows = write_outputs(args.out)
    if args.table_only and not rows:
        raise ConfigError(f"--table-only: no finished run folder or saved results under {args.out}/{{{','.join(PARTS)}}}/")
    if rows:
        print("\n" + table(rows))
        print(f"\nsaved: {args.out}/keras_tutorial.md, keras_tutorial.json, keras_tutorial.png")
    return {"results": rows, "out": str(args.out)}


if __name__ == "__main__":
    raise SystemExit(run_command(main, prog="keras_tutorial"))
