"""Training and inference speed: our training path with the fast oneDNN operators and with Paddle's
stock kernels, against PyTorch eager on identical nets, in one run.

    python benchmarks/speed.py [--nets standard_cnn dilated_cnn lenet resnet18_small vgg11_small hybridsn]
        [--threads 1]

Prints one table. Training (Adam, the same synthetic data for every path: 28x28 images, or for
HybridSN 1x30x25x25 windows of a synthetic scene; batch 64 for the seed nets and HybridSN, 128 for
the zoo nets, or --batch-size): images/s through our Trainer (paddle.Model.fit
with our callbacks, VisualDL logging and the array batch loader) with the fast operators
(paddle_cnn.fast) and with PADDLE_CNN_FAST_OPS=0 (Paddle's own kernels), a raw dygraph loop with
the fast operators, and PyTorch eager on parameter-checked twins when ``torch`` is importable (an
optional peer, not a dependency). Inference (batch 256): whole-set evaluation as our trainer runs
it (dygraph, eval mode), Paddle Inference with oneDNN, PyTorch. Every path runs once per round, so
a slow spell of the machine hits all of them alike; each figure is the median over ``--repeats``
rounds after a warm-up pass. All paths share one process, so they share its malloc settings
(paddle_cnn.fast.keep_freed_memory). ``--threads`` sets the threads of the fast operators, PyTorch
and Paddle Inference alike ("same threads"); run it under ``OMP_NUM_THREADS=N`` too so Paddle's
other CPU kernels get them. "s/epoch" is 59,000 images at our Trainer's rate.
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
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from paddle_cnn import _mkl, datasets as D, fast, nets, report  # first: it quiets Paddle's import-time warning
from paddle_cnn.training import RunConfig, RunData, Trainer, predict_logits

import paddle  # noqa: E402

EPOCH_IMAGES = 59_000


def synthetic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def unit_scaled(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1], what every raw path feeds its net."""
    return images.astype("float32")[:, None] / 255.0


SCENE_NETS = ("hybridsn",)


def synthetic_scene(n: int, seed: int = 0):
    """A hyperspectral scene of 30 PCA bands with ``n`` labelled pixels (16 classes), as the HybridSN
    pipeline prepares it: the Trainer's path cuts 25x25 windows from it per batch."""
    from paddle_cnn.datasets import hyperspectral as H

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    cube = rng.normal(size=(side, side, 30)).astype(np.float32)
    gt = np.zeros((side, side), np.int64)
    gt.reshape(-1)[:n] = rng.integers(1, 17, n)
    return H.prepare_scene(cube, gt, 30, 25)


class Workload:
    """One net's synthetic inputs: float32 ``x`` (N, C, ...) and labels for the raw paths, and the
    RunData and config the Trainer path gets."""

    def __init__(self, name: str, n: int):
        self.name = name
        if name in SCENE_NETS:
            from paddle_cnn.datasets import hyperspectral as H

            scene = synthetic_scene(n)
            train = H.SceneWindows(scene, np.arange(n), "synthetic")
            val = H.SceneWindows(scene, np.arange(min(n, 256)), "synthetic")
            self.data = RunData(train, val, val, [str(c) for c in range(16)], scene=scene)
            self.x, self.labels = train.batch(np.arange(n)), train.labels
            self.config = dict(dataset="indian-pines")
        else:
            images, labels = synthetic(n)
            train, val = D.ArrayDataset(images, labels), D.ArrayDataset(images[:256], labels[:256])
            self.data = RunData(train, val, val, [str(c) for c in range(10)])
            self.x, self.labels = unit_scaled(images), labels
            self.config = {}
        self.num_classes = len(self.data.class_names)

    def net(self):
        return nets.create(self.name, num_classes=self.num_classes, in_channels=self.x.shape[1],
                           input_size=self.x.shape[2:])


Pass = Callable[[], float]  # one timed pass, returning images/s


def timed(run: Callable[[], int]) -> Pass:
    """A pass timing ``run()``, which returns the images it processed."""
    def one() -> float:
        start = time.perf_counter()
        n = run()
        return n / (time.perf_counter() - start)
    return one


# Intel's OpenMP (Paddle's oneDNN and MKL) keeps its threads spinning for KMP_BLOCKTIME (200 ms)
# after each parallel region; a PyTorch pass started at once shared the cores with them (PyTorch
# LeNet measured 11,100 images/s right after a Paddle pass, 14,000 alone). Each pass waits longer.
SETTLE_SECONDS = 0.5


def interleaved_medians(passes: Dict[str, Pass], repeats: int) -> Dict[str, float]:
    """Median images/s of every pass over ``repeats`` rounds, after one warm-up pass each.

    Each round runs every path once, one after the other, so a slow spell of a shared machine
    (several points run to run here) slows all paths of a round alike instead of one path's repeats.
    """
    for one in passes.values():
        one()
    rates: Dict[str, List[float]] = {key: [] for key in passes}
    for _ in range(repeats):
        for key, one in passes.items():
            time.sleep(SETTLE_SECONDS)
            rates[key].append(one())
    return {key: statistics.median(values) for key, values in rates.items()}


# -- Paddle
def trainer_pass(work: Workload, batch: int, precision: str = "fp32") -> Pass:
    """One epoch through our Trainer; images/s as its metrics report it (training time only)."""
    def one() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            config = RunConfig(net=work.name, epochs=1, batch_size=batch, lr=1e-3, log_every=10**9,
                               threads=fast.get_threads() or 0, precision=precision, **work.config)
            trainer = Trainer(config, Path(tmp) / "run", data=work.data, verbose=False)
            return trainer.fit()[-1].images_per_s
    return one


def paddle_loop_pass(work: Workload, batch: int) -> Pass:
    """A plain dygraph loop over the same net (what the Trainer adds is the difference)."""
    paddle.seed(0)
    net = work.net()
    net.train()
    opt = paddle.optimizer.Adam(1e-3, parameters=net.parameters())
    x_all = work.x
    y_all = work.labels[:, None]
    loss_fn = paddle.nn.CrossEntropyLoss()

    def run() -> int:
        for i in range(0, len(x_all) - batch + 1, batch):
            out = net(paddle.to_tensor(x_all[i:i + batch]))
            loss = loss_fn(out[0] if isinstance(out, (list, tuple)) else out, paddle.to_tensor(y_all[i:i + batch]))
            loss.backward()
            opt.step()
            opt.clear_grad()
        return (len(x_all) // batch) * batch

    return timed(run)


@contextlib.contextmanager
def stock_kernels():
    """Paddle's own kernels inside (the project's layers read the switch on every call)."""
    old = os.environ.get(fast.SWITCH)
    os.environ[fast.SWITCH] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[fast.SWITCH]
        else:
            os.environ[fast.SWITCH] = old


def with_stock_kernels(one: Pass) -> Pass:
    def stock() -> float:
        with stock_kernels():
            return one()
    return stock


def dygraph_eval_pass(work: Workload, batch: int, precision: str = "fp32") -> Pass:
    """Whole-set evaluation as the trainer runs it (dygraph, eval mode, no autograd)."""
    net = nets.set_precision(work.net(), precision)
    net.eval()
    x_all = work.x

    def run() -> int:
        predict_logits(net, x_all, batch)
        return len(x_all)

    return timed(run)


def paddle_inference_pass(work: Workload, batch: int, threads: int, folder: str) -> Pass:
    """The net exported with paddle.jit.save into ``folder``, served by Paddle Inference with oneDNN."""
    from paddle import inference
    from paddle.static import InputSpec

    net = work.net()
    net.eval()
    x_all = work.x
    paddle.jit.save(net, f"{folder}/model", input_spec=[InputSpec([None, *x_all.shape[1:]], "float32", "image")])
    model_file = next(p for p in (Path(f"{folder}/model.json"), Path(f"{folder}/model.pdmodel")) if p.is_file())
    config = inference.Config(str(model_file), f"{folder}/model.pdiparams")
    config.disable_gpu()
    config.enable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])

    def run() -> int:
        for i in range(0, len(x_all), batch):
            chunk = np.ascontiguousarray(x_all[i:i + batch])
            handle.reshape(list(chunk.shape))
            handle.copy_from_cpu(chunk)
            predictor.run()
        return len(x_all)

    return timed(run)


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


def _torch_hybridsn(tnn, bands: int = 30, window: int = 25, classes: int = 16):
    """HybridSN as paddle_cnn.nets.hybridsn builds it: three Conv3d, the spectral axis folded into the
    channels of one Conv2d, three dense layers."""
    import torch

    class HybridSN(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv3d = tnn.Sequential(tnn.Conv3d(1, 8, (7, 3, 3)), tnn.ReLU(), tnn.Conv3d(8, 16, (5, 3, 3)),
                                         tnn.ReLU(), tnn.Conv3d(16, 32, (3, 3, 3)), tnn.ReLU())
            depth, side = bands - 12, window - 6
            self.conv2d = tnn.Sequential(tnn.Conv2d(32 * depth, 64, 3), tnn.ReLU(), tnn.Flatten())
            self.classifier = tnn.Sequential(tnn.Linear(64 * (side - 2) ** 2, 256), tnn.ReLU(), tnn.Dropout(0.4),
                                             tnn.Linear(256, 128), tnn.ReLU(), tnn.Dropout(0.4),
                                             tnn.Linear(128, classes))

        def forward(self, x):
            x = self.conv3d(x)
            return self.classifier(self.conv2d(torch.flatten(x, 1, 2)))

    return HybridSN()


def torch_net(name: str):
    """The same architectures in PyTorch; parameter counts are checked against Paddle's."""
    import torch
    from torch import nn as tnn

    if name == "hybridsn":
        features, head = _torch_hybridsn(tnn), []
    elif name in ("standard_cnn", "dilated_cnn"):
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
    ours = sum(int(np.prod(p.shape)) for p in nets.create(name, num_classes=16 if name in SCENE_NETS else 10)
               .parameters() if p.trainable)
    theirs = sum(p.numel() for p in net.parameters())
    assert ours == theirs, f"{name}: PyTorch twin has {theirs} parameters, ours {ours}"
    return net


def _channels_last(torch, net):
    """``net`` with every convolution's weights channels-last (NHWC, NDHWC for 3-D), as a user would
    set it up for PyTorch's oneDNN kernels."""
    for m in net.modules():
        if isinstance(m, torch.nn.Conv3d):
            m.to(memory_format=torch.channels_last_3d)
        elif isinstance(m, torch.nn.Conv2d):
            m.to(memory_format=torch.channels_last)
    return net


def torch_passes(work: Workload, batch: int, infer_batch: int, bf16: bool) -> Dict[str, Pass]:
    """PyTorch eager training and inference on the twin net, in each configuration a skilled user
    would try: NCHW fp32 (``torch``), channels-last fp32 (``torch_cl``) and, on a CPU with native bf16,
    bf16 autocast with channels-last (``torch_bf16``). None without torch or a twin."""
    try:
        import torch
    except ImportError:
        return {}
    if torch_net(work.name) is None:
        return {}
    y_all = torch.from_numpy(work.labels)
    loss_fn = torch.nn.CrossEntropyLoss()
    passes = {}
    configs = [("torch", False, False), ("torch_cl", True, False)] + ([("torch_bf16", True, True)] if bf16 else [])
    for key, channels_last, autocast in configs:
        torch.manual_seed(0)
        net = torch_net(work.name)
        x_all = torch.from_numpy(np.ascontiguousarray(work.x))
        if channels_last:
            net = _channels_last(torch, net)
            x_all = x_all.contiguous(memory_format=torch.channels_last_3d if x_all.ndim == 5 else torch.channels_last)
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def train(net=net, opt=opt, x_all=x_all, autocast=autocast) -> int:
            net.train()
            for i in range(0, len(x_all) - batch + 1, batch):
                opt.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = loss_fn(net(x_all[i:i + batch]), y_all[i:i + batch])
                loss.backward()
                opt.step()
            return (len(x_all) // batch) * batch

        def infer(net=net, x_all=x_all, autocast=autocast) -> int:
            net.eval()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                for i in range(0, len(x_all), infer_batch):
                    net(x_all[i:i + infer_batch])
            return len(x_all)

        passes[key], passes["eval_" + key] = timed(train), timed(infer)
    return passes


# The printed and saved table: (header, key, format), as paddle_cnn.report renders it.
COLUMNS = [("net", "net", "{}"), ("batch", "batch", "{}"), ("train: ours", "ours", "{:,.0f}"),
           ("ours, stock kernels", "stock", "{:,.0f}"), ("raw loop", "loop", "{:,.0f}"),
           ("PyTorch", "torch", "{:,.0f}"), ("PyTorch CL", "torch_cl", "{:,.0f}"),
           ("ours/best PyTorch", "ours_torch", "{:.2f}x"), ("ours bf16", "ours_bf16", "{:,.0f}"),
           ("PyTorch bf16", "torch_bf16", "{:,.0f}"), ("bf16: ours/PyTorch", "ours_torch_bf16", "{:.2f}x"),
           ("ours/stock", "ours_stock", "{:.2f}x"), ("s/epoch", "s_epoch", "{:.1f}"),
           ("eval: ours", "eval_ours", "{:,.0f}"), ("stock", "eval_stock", "{:,.0f}"),
           ("Paddle Inference", "eval_inference", "{:,.0f}"), ("PyTorch", "eval_torch", "{:,.0f}"),
           ("PyTorch CL", "eval_torch_cl", "{:,.0f}"), ("ours/best PyTorch", "eval_ours_torch", "{:.2f}x"),
           ("ours bf16", "eval_ours_bf16", "{:,.0f}"), ("PyTorch bf16", "eval_torch_bf16", "{:,.0f}"),
           ("bf16: ours/PyTorch", "eval_ours_torch_bf16", "{:.2f}x")]


def invocation() -> str:
    """The command as typed, with the thread setting and a CPU pinning (taskset) that argv does not show."""
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS",) if k in os.environ)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = f"taskset -c {','.join(map(str, cpus))}" if cpus and len(cpus) < (os.cpu_count() or 0) else ""
    return " ".join(filter(None, [env, pin, "python benchmarks/speed.py", *sys.argv[1:]]))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["standard_cnn", "dilated_cnn", "lenet", "resnet18_small",
                                                      "vgg11_small", "hybridsn"])
    parser.add_argument("--images", type=int, default=6400, help="synthetic training images per timed pass (seed nets)")
    parser.add_argument("--zoo-images", type=int, default=1280, help="the same for the zoo nets (10 batches of 128)")
    parser.add_argument("--scene-pixels", type=int, default=640, help="the same for HybridSN (10 batches of 64)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 (seed nets), 128 (zoo nets)")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (each path once per round)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every path: ours, PyTorch, Paddle Inference")
    parser.add_argument("--save", type=Path, default=None, metavar="JSON",
                        help="also save the table (python -m paddle_cnn.report JSON prints it again)")
    args = parser.parse_args(argv)
    # Paddle's BatchNorm warns on every training forward that it tracks global statistics (the raw
    # loop is outside the Trainer, which filters it): nothing to act on, and it buries the table.
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")
    paddle.set_device("cpu")
    if fast.ops() is None:
        print(f"the fast operators are unavailable ({fast.unavailable_reason()}): both Paddle columns are stock")
    fast.setup_process(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    isa = fast.cpu_isa()
    bf16 = isa in fast.BF16_ISAS
    print(f"{fast.cpu_model()}, oneDNN ISA {isa or 'unknown (no fast operators)'} "
          f"({'native bf16' if bf16 else 'no native bf16: PyTorch bf16 not measured'}); {_mkl.describe()}")
    print(f"Paddle {paddle.__version__}, PyTorch {torch_version or 'not installed'}, {args.threads} thread(s) for the "
          f"fast operators, PyTorch and Paddle Inference (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
          f"{args.images} (seed nets) / {args.zoo_images} (zoo nets) synthetic images per pass, median of "
          f"{args.repeats} interleaved rounds", flush=True)

    rows = []
    for name in args.nets:
        seed_net = name in ("standard_cnn", "dilated_cnn", "lenet")
        batch = args.batch_size or (64 if seed_net or name in SCENE_NETS else 128)
        work = Workload(name, args.scene_pixels if name in SCENE_NETS else args.images if seed_net else args.zoo_images)
        with tempfile.TemporaryDirectory() as folder:
            passes = {"ours": trainer_pass(work, batch),
                      "stock": with_stock_kernels(trainer_pass(work, batch)),
                      "loop": paddle_loop_pass(work, batch),
                      "eval_ours": dygraph_eval_pass(work, args.infer_batch),
                      "eval_stock": with_stock_kernels(dygraph_eval_pass(work, args.infer_batch)),
                      "eval_inference": paddle_inference_pass(work, args.infer_batch, args.threads, folder),
                      **({"ours_bf16": trainer_pass(work, batch, "bf16"),
                          "eval_ours_bf16": dygraph_eval_pass(work, args.infer_batch, "bf16")} if bf16 else {}),
                      **torch_passes(work, batch, args.infer_batch, bf16)}
            r = interleaved_medians(passes, args.repeats)
        ratio = lambda a, b: None if not b else a / b  # noqa: E731
        best = lambda *keys: max((r[k] for k in keys if r.get(k)), default=None)  # noqa: E731
        rows.append({"net": name, "batch": batch, "ours": r["ours"], "stock": r["stock"], "loop": r["loop"],
                     "torch": r.get("torch"), "torch_cl": r.get("torch_cl"), "torch_bf16": r.get("torch_bf16"),
                     "ours_torch": ratio(r["ours"], best("torch", "torch_cl")),
                     "ours_stock": ratio(r["ours"], r["stock"]), "s_epoch": EPOCH_IMAGES / r["ours"],
                     "eval_ours": r["eval_ours"], "eval_stock": r["eval_stock"],
                     "eval_inference": r["eval_inference"], "eval_torch": r.get("eval_torch"),
                     "eval_torch_cl": r.get("eval_torch_cl"), "eval_torch_bf16": r.get("eval_torch_bf16"),
                     "eval_ours_torch": ratio(r["eval_ours"], best("eval_torch", "eval_torch_cl")),
                     "ours_bf16": r.get("ours_bf16"), "eval_ours_bf16": r.get("eval_ours_bf16"),
                     "ours_torch_bf16": ratio(r.get("ours_bf16") or 0, r.get("torch_bf16")),
                     "eval_ours_torch_bf16": ratio(r.get("eval_ours_bf16") or 0, r.get("eval_torch_bf16"))})
        print(f"  measured {name}", flush=True)
    saved = {"command": invocation(), "cpu": fast.cpu_model(), "isa": isa, "mkl": _mkl.describe(), "paddle": paddle.__version__,
             "torch": torch_version, "threads": args.threads,
             "columns": COLUMNS, "rows": rows}
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    print("\n" + report.markdown_table(rows, COLUMNS))
    print("\nimages/s; 'ours' is paddle_cnn's Trainer (paddle.Model.fit) with the fast operators, the path every "
          "experiment uses; 'eval: ours' is its whole-set evaluation. PyTorch: NCHW fp32, CL = channels-last fp32, "
          "bf16 = bf16 autocast + channels-last; 'ours/best PyTorch' is against the faster fp32 one; 'ours bf16' is "
          "--precision bf16 (bf16 convolutions, and bf16 maps inside Sequential chains).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
