"""HybridSN (Roy et al., IEEE GRSL 2019) on a hyperspectral scene, with the paper's protocol and recipe.

    python -m experiments.hybridsn --dataset indian-pines|pavia-university|salinas [--data-dir D]
        [--epochs 100] [--out runs/hybridsn/NAME] [--resume] [--processes N]

PCA (whitened) to 30 bands (Indian Pines) or 15 (the others), 25x25 windows around the labelled
pixels, a stratified 30% of them train (10% of those validate), 70% test; Adam lr 1e-3, batch 256,
100 epochs. Prints OA, AA and kappa on the test pixels beside the paper's, and saves in the run
folder: results.json (oa, aa, kappa, per-class accuracy, pixels per class in each split), the
confusion matrix, and classification_map.png (ground truth beside the prediction for every pixel,
and masked to the labelled ones) with the predicted labels in classification_map.npz.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import List, Optional, Union

from paddle_cnn.datasets import get_dataset, hyperspectral as H, list_datasets
from paddle_cnn.entry import run_command
from paddle_cnn.fileio import atomic_savez
from paddle_cnn.training import RunConfig, RunDir, RunLayout, add_config_args, build_data, train_and_evaluate
from paddle_cnn.training import plots
from paddle_cnn.training.config import given_overrides
from paddle_cnn.training.evaluation import predict_logits
from paddle_cnn.training.parallel import add_processes_arg, is_main_process, relaunch

RECIPE = dict(net="hybridsn", optimizer="adam", lr=1e-3, batch_size=256, epochs=100, train_fraction=0.3,
              input_size=[25, 25])
VAL_SHARE = 0.1  # of the training pixels, for the per-epoch validation and the best checkpoint
# Table 2 of the paper (30% of the labelled pixels train), in percent.
PAPER = {"indian-pines": {"oa": 99.75, "aa": 99.63, "kappa": 99.71},
         "pavia-university": {"oa": 99.98, "aa": 99.97, "kappa": 99.98},
         "salinas": {"oa": 100.0, "aa": 100.0, "kappa": 100.0}}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.hybridsn", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=list_datasets("scene"))
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/hybridsn/DATASET)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--overwrite", action="store_true", help="start again in a folder that holds a run")
    parser.add_argument("--map-batch", type=int, default=1024, help="pixels per batch for the classification map")
    add_processes_arg(parser)
    add_config_args(parser, skip=("dataset", "net"))
    return parser


def scene_config(dataset: str, overrides: dict) -> RunConfig:
    """The paper's recipe for ``dataset``; VAL_SHARE of the training pixels validate."""
    base = RunConfig(dataset=dataset, val_fraction=VAL_SHARE, **RECIPE)
    return dataclasses.replace(base, **overrides).validate()


def show_map_progress(done: int, total: int, rate: float) -> None:
    print(f"  classification map: {done:,}/{total:,} pixels, {rate:,.0f} pixels/s", flush=True)


def main(argv: Optional[List[str]] = None) -> Union[dict, int]:
    args = build_parser().parse_args(argv)
    status = relaunch(args.processes, Path(__file__), argv, getattr(args, "device", None) or "auto")
    if status is not None:  # the job ran under paddle.distributed.launch; its exit status
        return status
    out = args.out or Path("runs/hybridsn") / args.dataset
    resume = args.resume and RunLayout.at(out).config.is_file()
    config = RunConfig.load(RunLayout.at(out).config) if resume else scene_config(args.dataset, given_overrides(args))
    if resume:
        config = dataclasses.replace(config, **given_overrides(args)).validate()
    else:
        RunDir(out, writer=is_main_process()).check_new(args.overwrite)  # refused before the scene is read
    data = build_data(config)
    scene = data.scene
    print(f"{args.dataset}: {scene.shape[0]} x {scene.shape[1]} pixels, PCA to {scene.bands} bands "
          f"({scene.variance_kept:.2%} of the variance), {scene.window}x{scene.window} windows; "
          f"{len(data.train)} train / {len(data.val)} validation / {len(data.test)} test pixels", flush=True)

    trainer, results = train_and_evaluate(config, out, resume=resume, overwrite=args.overwrite, data=data)
    test = results["test"]
    paper = PAPER[args.dataset]
    print(f"\n{args.dataset} test pixels (n={test['n']}): OA {100 * test['oa']:.2f}  AA {100 * test['aa']:.2f}  "
          f"kappa {100 * test['kappa']:.2f}   (paper: OA {paper['oa']:.2f}  AA {paper['aa']:.2f}  "
          f"kappa {paper['kappa']:.2f})")
    predicted = H.map_scene(lambda x: predict_logits(trainer.net, x, args.map_batch), scene, args.map_batch,
                            show_map_progress)
    if is_main_process():
        truth = scene.ground_truth()
        files = RunLayout.at(out)
        atomic_savez(files.root / "classification_map.npz", predicted=predicted, truth=truth)
        plots.classification_map(truth, predicted, data.class_names, files.root / "classification_map.png",
                                 title=f"HybridSN on {get_dataset(args.dataset).title}: test OA "
                                       f"{100 * test['oa']:.2f}%")
        print(f"saved: {files.results}, {files.confusion}, {files.root / 'classification_map.png'}")
    return dict(results, paper=paper)


if __name__ == "__main__":
    raise SystemExit(run_command(main, prog="hybridsn"))
