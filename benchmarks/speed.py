"""Training and inference speed of the seed nets: our training path, a raw dygraph loop, PyTorch.

    python benchmarks/speed.py [--nets standard_cnn dilated_cnn lenet] [--threads 1] [--distributed]

Prints one table. Training (batch 64, Adam, the same synthetic 28x28 data for every path):
images/s through our Trainer (paddle.Model.fit with our callbacks, VisualDL logging and the
array batch loader), with ``--distributed`` the same on 2 processes (paddle.distributed.launch),
a raw dygraph loop, the same loop with paddle.nn.Conv2D's stock bias add ("stock conv": what our
Conv2D replaces), the loop under ``paddle.jit.to_static``, and PyTorch eager on identical nets
when ``torch`` is importable (an optional peer, not a dependency). Inference (batch 256):
dygraph, Paddle Inference with oneDNN, PyTorch. Each figure is the median of ``--repeats`` timed
passes after a warm-up. "best ours" is the faster of one and two processes; "s/epoch" is 59,000
images at the one-process rate; "% of limit" compares the raw loop with this CPU's measured
matrix-multiply rate at 3x the forward FLOPs per image (forward plus backward). Paddle trains
with OMP_NUM_THREADS threads (Paddle sets 1 when it is unset); ``--threads`` sets PyTorch's and
Paddle Inference's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from paddle_cnn import analysis, datasets as D, nets  # first: it quiets Paddle's import-time warning
from paddle_cnn.training import RunConfig, RunData, Trainer

import paddle  # noqa: E402

EPOCH_IMAGES = 59_000


def synthetic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def median_rate(run: Callable[[], int], repeats: int) -> float:
    """Median images/s of ``run()`` (which returns the images it processed) after one warm-up call."""
    run()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


# -- Paddle
def trainer_rate(name: str, images, labels, batch: int, repeats: int) -> float:
    """Images/s of one epoch through our Trainer, as its metrics report it (training time only)."""
    rates = []
    for r in range(repeats + 1):
        with tempfile.TemporaryDirectory() as tmp:
            train = D.ArrayDataset(images, labels)
            val = D.ArrayDataset(images[:256], labels[:256])
            data = RunData(train, val, val, [str(c) for c in range(10)])
            config = RunConfig(net=name, epochs=1, batch_size=batch, lr=1e-3, log_every=10**9)
            trainer = Trainer(config, Path(tmp) / "run", data=data, verbose=False)
            history = trainer.fit()
            if r:  # the first is the warm-up
                rates.append(history[-1]["images_per_s"])
    return statistics.median(rates)


def paddle_loop_rate(name: str, images, labels, batch: int, repeats: int, static: bool = False,
                     stock_conv: bool = False) -> float:
    """A plain dygraph loop; ``stock_conv`` uses paddle.nn.Conv2D's own (broadcast) bias add."""
    from paddle_cnn.nets._layers import Conv2D

    paddle.seed(0)
    net = nets.create(name)
    if stock_conv:
        for layer in net.sublayers():
            if isinstance(layer, Conv2D):
                layer.forward = types.MethodType(paddle.nn.Conv2D.forward, layer)
    net.train()
    opt = paddle.optimizer.Adam(1e-3, parameters=net.parameters())
    model = paddle.jit.to_static(net, full_graph=True) if static else net
    x_all = images.astype("float32")[:, None] / 255.0
    y_all = labels[:, None]
    loss_fn = paddle.nn.CrossEntropyLoss()

    def run() -> int:
        for i in range(0, len(x_all) - batch + 1, batch):
            loss = loss_fn(model(paddle.to_tensor(x_all[i:i + batch])), paddle.to_tensor(y_all[i:i + batch]))
            loss.backward()
            opt.step()
            opt.clear_grad()
        return (len(x_all) // batch) * batch

    return median_rate(run, repeats)


def paddle_infer_rates(name: str, images, batch: int, repeats: int, threads: int) -> Dict[str, float]:
    from paddle import inference
    from paddle.static import InputSpec

    net = nets.create(name)
    net.eval()
    x_all = images.astype("float32")[:, None] / 255.0

    def dygraph() -> int:
        with paddle.no_grad():
            for i in range(0, len(x_all), batch):
                net(paddle.to_tensor(x_all[i:i + batch]))
        return len(x_all)

    out = {"dygraph": median_rate(dygraph, repeats)}
    with tempfile.TemporaryDirectory() as tmp:
        paddle.jit.save(net, f"{tmp}/model", input_spec=[InputSpec([None, 1, 28, 28], "float32", "image")])
        model_file = next(p for p in (Path(f"{tmp}/model.json"), Path(f"{tmp}/model.pdmodel")) if p.is_file())
        config = inference.Config(str(model_file), f"{tmp}/model.pdiparams")
        config.disable_gpu()
        config.enable_mkldnn()
        config.set_cpu_math_library_num_threads(threads)
        config.disable_glog_info()
        predictor = inference.create_predictor(config)
        handle = predictor.get_input_handle(predictor.get_input_names()[0])

        def served() -> int:
            for i in range(0, len(x_all), batch):
                chunk = np.ascontiguousarray(x_all[i:i + batch])
                handle.reshape(list(chunk.shape))
                handle.copy_from_cpu(chunk)
                predictor.run()
            return len(x_all)

        out["paddle inference"] = median_rate(served, repeats)
    return out


def matmul_gflops(threads: int, repeats: int = 5) -> float:
    """This CPU's float32 matrix-multiply rate (1024^3), the better of Paddle and PyTorch, in GFLOP/s."""
    a = paddle.randn([1024, 1024])
    b = paddle.randn([1024, 1024])

    def run() -> int:
        for _ in range(10):
            (a @ b).numpy()
        return 10

    rate = median_rate(run, repeats)
    try:
        import torch
    except ImportError:
        return rate * 2 * 1024**3 / 1e9
    torch.set_num_threads(threads)
    ta, tb = torch.randn(1024, 1024), torch.randn(1024, 1024)

    def run_torch() -> int:
        for _ in range(10):
            ta @ tb
        return 10

    return max(rate, median_rate(run_torch, repeats)) * 2 * 1024**3 / 1e9


# -- PyTorch (optional peer)
def torch_net(name: str):
    """The same architectures in PyTorch; parameter counts are checked against Paddle's."""
    import torch
    from torch import nn as tnn

    if name in ("standard_cnn", "dilated_cnn"):
        d = 2 if name == "dilated_cnn" else 1
        features = tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1, dilation=d), tnn.ReLU(), tnn.AvgPool2d(2),
                                  tnn.Conv2d(16, 32, 3, dilation=d), tnn.ReLU(), tnn.AvgPool2d(2), tnn.Flatten())
        n = features(torch.zeros(1, 1, 28, 28)).numel()
        head = [tnn.Linear(n, 256), tnn.ReLU(), tnn.Linear(256, 128), tnn.ReLU(), tnn.Linear(128, 10)]
    elif name == "lenet":
        features = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.Sigmoid(), tnn.AvgPool2d(2),
                                  tnn.Conv2d(6, 16, 5), tnn.Sigmoid(), tnn.AvgPool2d(2), tnn.Flatten())
        head = [tnn.Linear(400, 120), tnn.Sigmoid(), tnn.Linear(120, 84), tnn.Sigmoid(), tnn.Linear(84, 10)]
    else:
        return None
    net = tnn.Sequential(features, *head)
    ours = sum(int(np.prod(p.shape)) for p in nets.create(name).parameters())
    theirs = sum(p.numel() for p in net.parameters())
    assert ours == theirs, f"{name}: PyTorch twin has {theirs} parameters, ours {ours}"
    return net


def torch_rates(name: str, images, labels, batch: int, infer_batch: int, repeats: int) -> Optional[Dict[str, float]]:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    net = torch_net(name)
    if net is None:
        return None
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x_all = torch.from_numpy(images.astype("float32")[:, None] / 255.0)
    y_all = torch.from_numpy(labels)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train() -> int:
        net.train()
        for i in range(0, len(x_all) - batch + 1, batch):
            opt.zero_grad()
            loss_fn(net(x_all[i:i + batch]), y_all[i:i + batch]).backward()
            opt.step()
        return (len(x_all) // batch) * batch

    def infer() -> int:
        net.eval()
        with torch.inference_mode():
            for i in range(0, len(x_all), infer_batch):
                net(x_all[i:i + infer_batch])
        return len(x_all)

    return {"train": median_rate(train, repeats), "infer": median_rate(infer, repeats)}


def distributed_rate(name: str, n: int, batch: int, repeats: int) -> float:
    """Our Trainer on 2 processes (gloo on CPU), as rank 0 reports it."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir",
               f"{tmp}/logs", __file__, "--dp-worker", name, "--images", str(n), "--batch-size", str(batch),
               "--repeats", str(repeats)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        for line in (Path(tmp) / "logs" / "workerlog.0").read_text().splitlines():
            if line.startswith("DP_RESULT "):
                return float(json.loads(line[len("DP_RESULT "):])["rate"])
    raise RuntimeError("the distributed workers printed no result")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["standard_cnn", "dilated_cnn", "lenet"])
    parser.add_argument("--images", type=int, default=6400, help="synthetic training images per timed pass")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for PyTorch and Paddle Inference (Paddle training uses OMP_NUM_THREADS, 1)")
    parser.add_argument("--distributed", action="store_true", help="also time our Trainer on 2 processes")
    parser.add_argument("--dp-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    paddle.set_device("cpu")
    images, labels = synthetic(args.images)

    if args.dp_worker:  # one process of --distributed
        rate = trainer_rate(args.dp_worker, images, labels, args.batch_size, args.repeats)
        if paddle.distributed.get_rank() == 0:
            print("DP_RESULT " + json.dumps({"rate": rate}), flush=True)
        return 0

    try:
        import torch

        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    gflops = matmul_gflops(args.threads)
    print(f"Paddle {paddle.__version__}, PyTorch {torch_version or 'not installed'}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {args.threads} thread(s) for "
          f"PyTorch and Paddle Inference; matrix multiply {gflops:.0f} GFLOP/s; batch {args.batch_size}, "
          f"{args.images} synthetic images, median of {args.repeats}", flush=True)

    header = ["net", "train: ours", "raw loop", "stock conv", "to_static", "PyTorch", "best ours/PyTorch", "s/epoch",
              "% of limit", "infer: dygraph", "Paddle Inference", "PyTorch", "PI/PyTorch"]
    if args.distributed:
        header.insert(2, "ours x2 proc")
    rows = []
    for name in args.nets:
        fwd = analysis.count_flops(nets.create(name), (1, 28, 28)).flops
        ours = trainer_rate(name, images, labels, args.batch_size, args.repeats)
        loop = paddle_loop_rate(name, images, labels, args.batch_size, args.repeats)
        stock = paddle_loop_rate(name, images, labels, args.batch_size, args.repeats, stock_conv=True)
        static = paddle_loop_rate(name, images, labels, args.batch_size, args.repeats, static=True)
        infer = paddle_infer_rates(name, images, args.infer_batch, args.repeats, args.threads)
        peer = torch_rates(name, images, labels, args.batch_size, args.infer_batch, args.repeats)
        limit = gflops * 1e9 / (3 * fwd)
        fmt = lambda v: "-" if v is None else f"{v:,.0f}"  # noqa: E731
        ratio = lambda a, b: "-" if b is None else f"{a / b:.2f}x"  # noqa: E731
        dp = distributed_rate(name, args.images, args.batch_size, args.repeats) if args.distributed else None
        best = max(ours, dp or 0)
        row = [name, fmt(ours), fmt(loop), fmt(stock), fmt(static), fmt(peer and peer["train"]),
               ratio(best, peer and peer["train"]), f"{EPOCH_IMAGES / ours:.1f}", f"{100 * loop / limit:.1f}%",
               fmt(infer["dygraph"]), fmt(infer["paddle inference"]), fmt(peer and peer["infer"]),
               ratio(infer["paddle inference"], peer and peer["infer"])]
        if args.distributed:
            row.insert(2, fmt(dp))
        rows.append(row)
        print(f"  measured {name}", flush=True)
    print("\n| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nimages/s; 'ours' is paddle_cnn's Trainer (paddle.Model.fit), the path every experiment uses.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
