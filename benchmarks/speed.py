"""Training and inference speed: our training path with the fast oneDNN operators and with Paddle's
stock kernels, against PyTorch eager on identical nets, in one run.

    python benchmarks/speed.py [--nets standard_cnn dilated_cnn lenet resnet18_small vgg11_small] [--threads 1]

Prints one table. Training (Adam, the same synthetic 28x28 data for every path; batch 64 for the
seed nets, 128 for the zoo nets, or --batch-size): images/s through our Trainer (paddle.Model.fit
with our callbacks, VisualDL logging and the array batch loader) with the fast operators
(paddle_cnn.fast) and with PADDLE_CNN_FAST_OPS=0 (Paddle's own kernels), a raw dygraph loop with
the fast operators, and PyTorch eager on parameter-checked twins when ``torch`` is importable (an
optional peer, not a dependency). Inference (batch 256): whole-set evaluation as our trainer runs
it (dygraph, eval mode), Paddle Inference with oneDNN, PyTorch. Each figure is the median of
``--repeats`` timed passes after a warm-up. ``--threads`` sets the threads of the fast operators,
PyTorch and Paddle Inference alike ("same threads"); run it under ``OMP_NUM_THREADS=N`` too so
Paddle's other CPU kernels get them. "s/epoch" is 59,000 images at our Trainer's rate.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from paddle_cnn import datasets as D, fast, nets, report  # first: it quiets Paddle's import-time warning
from paddle_cnn.training import RunConfig, RunData, Trainer, predict_logits

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
            config = RunConfig(net=name, epochs=1, batch_size=batch, lr=1e-3, log_every=10**9,
                               threads=fast.get_threads() or 0)
            trainer = Trainer(config, Path(tmp) / "run", data=data, verbose=False)
            history = trainer.fit()
            if r:  # the first is the warm-up
                rates.append(history[-1].images_per_s)
    return statistics.median(rates)


def paddle_loop_rate(name: str, images, labels, batch: int, repeats: int) -> float:
    """A plain dygraph loop over the same net (what the Trainer adds is the difference)."""
    paddle.seed(0)
    net = nets.create(name)
    net.train()
    opt = paddle.optimizer.Adam(1e-3, parameters=net.parameters())
    x_all = images.astype("float32")[:, None] / 255.0
    y_all = labels[:, None]
    loss_fn = paddle.nn.CrossEntropyLoss()

    def run() -> int:
        for i in range(0, len(x_all) - batch + 1, batch):
            out = net(paddle.to_tensor(x_all[i:i + batch]))
            loss = loss_fn(out[0] if isinstance(out, (list, tuple)) else out, paddle.to_tensor(y_all[i:i + batch]))
            loss.backward()
            opt.step()
            opt.clear_grad()
        return (len(x_all) // batch) * batch

    return median_rate(run, repeats)


@contextlib.contextmanager
def stock_kernels():
    """Paddle's own conv and pool kernels inside (the project's layers read the switch on every call)."""
    old = os.environ.get(fast.SWITCH)
    os.environ[fast.SWITCH] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[fast.SWITCH]
        else:
            os.environ[fast.SWITCH] = old


def paddle_infer_rates(name: str, images, batch: int, repeats: int, threads: int,
                       served: bool = True) -> Dict[str, float]:
    from paddle import inference
    from paddle.static import InputSpec

    net = nets.create(name)
    net.eval()
    x_all = images.astype("float32")[:, None] / 255.0

    def dygraph() -> int:  # whole-set evaluation as the trainer runs it
        predict_logits(net, x_all, batch)
        return len(x_all)

    out = {"dygraph": median_rate(dygraph, repeats)}
    if not served:
        return out
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


# -- PyTorch (optional peer)
def _torch_resnet18_small(tnn):
    """ResNet-18 at quarter width with a 3x3 stride-1 stem, as paddle_cnn.nets.resnet builds it."""
    import torch

    class Block(tnn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(cin, planes, 3, stride, 1), tnn.BatchNorm2d(planes)
            self.conv2, self.bn2 = tnn.Conv2d(planes, planes, 3, 1, 1), tnn.BatchNorm2d(planes)
            self.short = tnn.Conv2d(cin, planes, 1, stride) if stride != 1 or cin != planes else None

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.short is None else self.short(x)))

    blocks, ch = [tnn.Conv2d(1, 16, 3, padding=1), tnn.BatchNorm2d(16), tnn.ReLU()], 16
    for i, planes in enumerate((16, 32, 64, 128)):
        for j in range(2):
            blocks.append(Block(ch, planes, 2 if i > 0 and j == 0 else 1))
            ch = planes
    return tnn.Sequential(*blocks, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(ch, 10))


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
    elif name == "vgg11_small":  # VGG-11's first four blocks at half width, 512-wide dropout head
        layers, ch = [], 1
        for convs, width in ((1, 32), (1, 64), (2, 128), (2, 256)):
            for _ in range(convs):
                layers += [tnn.Conv2d(ch, width, 3, padding=1), tnn.ReLU()]
                ch = width
            layers.append(tnn.MaxPool2d(2))
        features = tnn.Sequential(*layers, tnn.Flatten())
        n = features(torch.zeros(1, 1, 28, 28)).numel()
        head = [tnn.Linear(n, 512), tnn.ReLU(), tnn.Dropout(0.5), tnn.Linear(512, 512), tnn.ReLU(), tnn.Dropout(0.5),
                tnn.Linear(512, 10)]
    elif name == "resnet18_small":
        features, head = _torch_resnet18_small(tnn), []
    else:
        return None
    net = tnn.Sequential(features, *head)
    # Paddle counts batch-norm running statistics as parameters; PyTorch keeps them as buffers.
    ours = sum(int(np.prod(p.shape)) for p in nets.create(name).parameters() if p.trainable)
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


# The printed and saved table: (header, key, format), as paddle_cnn.report renders it.
COLUMNS = [("net", "net", "{}"), ("batch", "batch", "{}"), ("train: ours", "ours", "{:,.0f}"),
           ("ours, stock kernels", "stock", "{:,.0f}"), ("raw loop", "loop", "{:,.0f}"),
           ("PyTorch", "torch", "{:,.0f}"), ("ours/PyTorch", "ours_torch", "{:.2f}x"),
           ("ours/stock", "ours_stock", "{:.2f}x"), ("s/epoch", "s_epoch", "{:.1f}"),
           ("eval: ours", "eval_ours", "{:,.0f}"), ("stock", "eval_stock", "{:,.0f}"),
           ("Paddle Inference", "eval_inference", "{:,.0f}"), ("PyTorch", "eval_torch", "{:,.0f}"),
           ("ours/PyTorch", "eval_ours_torch", "{:.2f}x")]


def invocation() -> str:
    """The command as typed, with the thread setting and a CPU pinning (taskset) that argv does not show."""
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS",) if k in os.environ)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = f"taskset -c {','.join(map(str, cpus))}" if cpus and len(cpus) < (os.cpu_count() or 0) else ""
    return " ".join(filter(None, [env, pin, "python benchmarks/speed.py", *sys.argv[1:]]))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["standard_cnn", "dilated_cnn", "lenet", "resnet18_small",
                                                      "vgg11_small"])
    parser.add_argument("--images", type=int, default=6400, help="synthetic training images per timed pass (seed nets)")
    parser.add_argument("--zoo-images", type=int, default=1280, help="the same for the zoo nets (10 batches of 128)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 (seed nets), 128 (zoo nets)")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads for every path: ours, PyTorch, Paddle Inference")
    parser.add_argument("--save", type=Path, default=None, metavar="JSON",
                        help="also save the table (python -m paddle_cnn.report JSON prints it again)")
    args = parser.parse_args(argv)
    paddle.set_device("cpu")
    if fast.ops() is None:
        print(f"the fast operators are unavailable ({fast.unavailable_reason()}): both Paddle columns are stock")
    fast.set_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    print(f"Paddle {paddle.__version__}, PyTorch {torch_version or 'not installed'}, {args.threads} thread(s) for the "
          f"fast operators, PyTorch and Paddle Inference (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
          f"{args.images} (seed nets) / {args.zoo_images} (zoo nets) synthetic images per pass, median of "
          f"{args.repeats}", flush=True)

    rows = []
    for name in args.nets:
        seed_net = name in ("standard_cnn", "dilated_cnn", "lenet")
        batch = args.batch_size or (64 if seed_net else 128)
        images, labels = synthetic(args.images if seed_net else args.zoo_images)
        ours = trainer_rate(name, images, labels, batch, args.repeats)
        loop = paddle_loop_rate(name, images, labels, batch, args.repeats)
        infer = paddle_infer_rates(name, images, args.infer_batch, args.repeats, args.threads)
        with stock_kernels():
            stock = trainer_rate(name, images, labels, batch, args.repeats)
            stock_infer = paddle_infer_rates(name, images, args.infer_batch, args.repeats, args.threads,
                                             served=False)
        peer = torch_rates(name, images, labels, batch, args.infer_batch, args.repeats) or {}
        ratio = lambda a, b: None if not b else a / b  # noqa: E731
        rows.append({"net": name, "batch": batch, "ours": ours, "stock": stock, "loop": loop,
                     "torch": peer.get("train"), "ours_torch": ratio(ours, peer.get("train")),
                     "ours_stock": ratio(ours, stock), "s_epoch": EPOCH_IMAGES / ours, "eval_ours": infer["dygraph"],
                     "eval_stock": stock_infer["dygraph"], "eval_inference": infer["paddle inference"],
                     "eval_torch": peer.get("infer"), "eval_ours_torch": ratio(infer["dygraph"], peer.get("infer"))})
        print(f"  measured {name}", flush=True)
    saved = {"command": invocation(), "paddle": paddle.__version__, "torch": torch_version, "threads": args.threads,
             "columns": COLUMNS, "rows": rows}
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    print("\n" + report.markdown_table(rows, COLUMNS))
    print("\nimages/s; 'ours' is paddle_cnn's Trainer (paddle.Model.fit) with the fast operators, the path every "
          "experiment uses; 'eval: ours' is its whole-set evaluation.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
