"""The `paddle-cnn` command (also `python -m paddle_cnn`): inspect networks, train, evaluate,
predict on your own image files, and export for Paddle Inference."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import List, Optional

from paddle_cnn import analysis, fast, nets
from paddle_cnn.entry import run_command
from paddle_cnn.errors import ConfigError


def _cmd_list(args: argparse.Namespace) -> int:
    names = nets.list_nets(args.pattern)
    if not names:
        print(f"no registered network matches {args.pattern!r}", file=sys.stderr)
        return 1
    if args.markdown:
        print(network_table(names))
        return 0
    width = max(len(n) for n in names)
    for name in names:
        info = nets.get_info(name)
        size = "x".join(str(v) for v in info.input_size)
        print(f"{name.ljust(width)}  {size:>9}  {info.description}")
    return 0


def network_table(names: List[str]) -> str:
    """A markdown table of networks at their declared input size: params, FLOPs, receptive field."""
    lines = ["| name | input | params | MFLOPs/img | receptive field | what |", "|---|---:|---:|---:|---:|---|"]
    for name in names:
        info = nets.get_info(name)
        net = nets.create(name, in_channels=info.input_size[0])
        params = sum(int(p.size) for p in net.parameters())
        cost = analysis.count_flops(net, info.input_size)
        try:
            field = "x".join(map(str, analysis.receptive_field(net, info.input_size)))
        except ValueError:
            field = "-"
        size = "x".join(str(v) for v in info.input_size)
        lines.append(f"| `{name}` | {size} | {params:,} | {cost.flops / 1e6:,.1f} | {field} | {info.description} |")
    return "\n".join(lines)


def _cmd_datasets(args: argparse.Namespace) -> int:
    from paddle_cnn.datasets import registry

    if args.markdown:
        print(registry.files_table(args.kind))
        return 0
    for name in registry.list_datasets(args.kind):
        info = registry.get_dataset(name)
        shape = "x".join(map(str, info.shape))
        sizes = ", ".join(f"{k} {v:,}" for k, v in info.sizes.items())
        print(f"{name:18} {info.kind:6} {shape:10} {info.num_classes:2} classes  {sizes}  ({info.title})")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    import paddle

    info = nets.get_info(args.name)
    in_shape = tuple(args.input_size) if args.input_size else info.input_shape(args.in_channels)
    net = nets.create(args.name, num_classes=args.num_classes, in_channels=in_shape[0], input_size=in_shape[1:])
    print(f"{args.name}: {info.description}")
    print(f"input (C, ...): {list(in_shape)}")
    paddle.summary(net, (args.batch_size,) + in_shape)
    print(analysis.format_table(analysis.layer_table(net, in_shape)))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from paddle_cnn.training import RunConfig, RunLayout, train_and_evaluate
    from paddle_cnn.training.config import given_overrides
    from paddle_cnn.training.parallel import is_main_process, relaunch

    overrides = given_overrides(args)
    if args.resume:
        run_dir = args.resume
        if not run_dir.is_dir():
            raise ConfigError(f"--resume {run_dir}: not a run folder ({'a file' if run_dir.exists() else 'missing'})")
        config = dataclasses.replace(RunConfig.load(RunLayout.at(run_dir).config), **overrides).validate()
    else:
        run_dir = args.out or Path("runs") / overrides.get("net", RunConfig.net)
        config = RunConfig(**overrides).validate()
    nets.get_info(config.net)  # an unknown name fails here, listing the valid ones
    status = relaunch(args.processes, Path(__file__).with_name("__main__.py"), args.argv, config.device)
    if status is not None:
        return status
    _, results = train_and_evaluate(config, run_dir, resume=args.resume is not None, overwrite=args.overwrite)
    if not is_main_process():
        return 0
    print(f"{config.net}: val acc {results['val']['acc']:.4f}, test acc {results['test']['acc']:.4f} "
          f"(loss {results['test']['loss']:.4f}); run folder {run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from paddle_cnn.training import build_data, evaluate_network, load_model
    from paddle_cnn.training.trainer import select_device

    if select_device(args.device) == "cpu":
        fast.setup_process()
    net, config, state = load_model(args.run_dir, args.which)
    moved = {k: getattr(args, k) for k in ("data_dir", "train_csv", "test_csv") if getattr(args, k)}
    config = dataclasses.replace(config, **moved).with_absolute_paths()
    data = build_data(config)
    for split in args.split:
        m = evaluate_network(net, getattr(data, split))
        print(f"{split}: loss {m['loss']:.4f}  acc {m['acc']:.4f}  (n={m['n']}, {config.net}, "
              f"checkpoint {args.which} = epoch {state.run.epoch})")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from paddle_cnn import images as I
    from paddle_cnn.inference import open_predictor

    from paddle_cnn.training.layout import EXPORT_META
    from paddle_cnn.training.trainer import select_device

    if (args.model / EXPORT_META).is_file() and args.device == "gpu":
        raise ConfigError(f"{args.model}: an export is predicted on CPU here (Paddle Inference with oneDNN); "
                          "give the run folder with --device gpu to predict on the GPU")
    if not (args.model / EXPORT_META).is_file() and select_device(args.device) == "cpu":
        fast.setup_process()  # the dygraph net's operators (an export runs in Paddle Inference)
    predictor = open_predictor(args.model, args.which)
    meta, contract = predictor.meta, predictor.contract
    if args.lang not in meta["classes"]:
        raise ConfigError(f"--lang {args.lang}: {contract.dataset} has class names in {', '.join(meta['classes'])}")
    names = meta["classes"][args.lang]
    if contract.bands:
        return _predict_scenes(args, predictor, names)
    if not 1 <= args.top_k <= len(names):
        raise ConfigError(f"--top-k must be between 1 and the {len(names)} classes, got {args.top_k}")
    prepared, shown, failures = [], [], 0
    for path in args.images:
        try:
            prepared.append(I.load_for_model(path, contract, args.invert))
            shown.append(path)
        except I.ImageError as exc:
            print(f"paddle-cnn: error: {exc}", file=sys.stderr)
            failures += 1
    if prepared:
        probs = predictor.probabilities(np.stack([p.image for p in prepared]))
        k = args.top_k
        for path, p, prep in zip(shown, probs, prepared):
            top = np.argsort(-p)[:k]
            ranked = "  ".join(f"{names[i]} {p[i]:.3f}" for i in top)
            print(f"{path}: {ranked}{'  (inverted)' if prep.inverted else ''}")
        if args.save_grid:
            from paddle_cnn.training import plots

            grid_names = names if args.lang == "en" or plots.has_cjk_font() else meta["classes"]["en"]
            plots.input_grid(np.stack([p.image for p in prepared]), probs, grid_names,
                             [Path(s).name for s in shown], args.save_grid)
            print(f"saved {args.save_grid}")
    return 1 if failures else 0


def _predict_scenes(args: argparse.Namespace, predictor, names) -> int:
    """Each .mat scene: PCA as in training, a window around every pixel, the map saved as
    DIR/STEM_map.png (and .npz); a file that cannot be read is one line and the rest are mapped."""
    import numpy as np

    from paddle_cnn.datasets import DataError, hyperspectral as H
    from paddle_cnn.fileio import atomic_savez
    from paddle_cnn.training import plots

    contract, failures = predictor.contract, 0
    args.map_dir.mkdir(parents=True, exist_ok=True)
    for path in map(Path, args.images):
        try:
            cube = H.read_cube(path, args.key, min_bands=contract.bands)
        except DataError as exc:
            print(f"paddle-cnn: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        scene = H.prepare_scene(cube, None, contract.bands, contract.height)
        labels = H.map_scene(predictor.probabilities_of_inputs, scene,
                             report=lambda done, total, rate: print(f"  {path.name}: {done:,}/{total:,} pixels, "
                                                                    f"{rate:,.0f} pixels/s", flush=True))
        out = args.map_dir / f"{path.stem}_map.png"
        plots.classification_map(None, labels, names, out, title=f"{path.name}: {contract.dataset} classes")
        atomic_savez(out.with_suffix(".npz"), predicted=labels)
        counts = np.bincount(labels.ravel(), minlength=len(names) + 1)[1:]
        top = "  ".join(f"{names[i]} {counts[i] / labels.size:.1%}" for i in np.argsort(-counts)[:args.top_k])
        print(f"{path}: {labels.shape[0]} x {labels.shape[1]} pixels: {top}; saved {out} and {out.with_suffix('.npz')}")
    return 1 if failures else 0


def _cmd_explain(args: argparse.Namespace) -> int:
    """Feature maps, Grad-CAM and effective receptive fields of a run's net on each image."""
    from paddle_cnn import datasets as D
    from paddle_cnn import explain as E
    from paddle_cnn import images as I
    from paddle_cnn.training import load_model, plots
    from paddle_cnn.training.trainer import select_device

    if select_device(args.device) == "cpu":
        fast.setup_process()
    net, config, state = load_model(args.run_dir, args.which)
    contract = state.input
    if contract.bands:
        raise ConfigError(f"{args.run_dir}: explain draws image nets; {config.net} classifies scene windows")
    names = D.get_dataset(config.dataset).classes.get(args.lang)
    if names is None:
        raise ConfigError(f"--lang {args.lang}: {config.dataset} has no class names in that language")
    family = None
    if args.lang == "zh":
        family = plots.cjk_family()
        if family is None:
            raise ConfigError("--lang zh needs a font with Chinese glyphs: pip install 'paddle-cnn[zh]' "
                              "(or install Noto Sans CJK), or use --lang en")
    stages = E.conv_stages(net, contract.shape)
    if not stages:
        raise ConfigError(f"{config.net} has no 2-D convolution stages to explain")
    failures = 0
    for path in map(Path, args.images):
        try:
            prepared = I.load_for_model(path, contract, args.invert)
        except I.ImageError as exc:
            print(f"paddle-cnn: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        x = contract.normalize_images(prepared.image[None])[0]
        ex = E.explain(net, x, stages)
        saved = E.draw(prepared.image, ex, stages, names, args.out, path.stem, family=family)
        fields = ", ".join(f"{s.layer} {E.field_extent(ex.fields[s.layer]):.0f}/{s.receptive_field[0]}"
                           for s in stages)
        print(f"{path}: {names[ex.top]} {ex.probs[ex.top]:.3f}; effective/theoretical field {fields}; saved "
              f"{', '.join(str(p) for p in saved)}")
    return 1 if failures else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from paddle_cnn.inference import export_run

    import json

    from paddle_cnn.training.layout import EXPORT_META

    out = export_run(args.run_dir, args.which, args.out, overwrite=args.overwrite)
    src = json.loads((out / EXPORT_META).read_text(encoding="utf-8"))["source"]
    acc = lambda v: "not recorded" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"exported {args.run_dir} (checkpoint {args.which} = epoch {src['epoch']}, val acc {acc(src['val_acc'])}, "
          f"test acc {acc(src['test_acc'])}) to {out}")
    return 0


def board_command(logdirs: List[str], host: str, port: int) -> List[str]:
    # VisualDL 2.5.3 answers HTTP 500 to clients that send no Accept-Language header unless a
    # language is given; telemetry would try to reach the internet.
    return [sys.executable, "-m", "visualdl.server.app", "--logdir", *logdirs, "--host", host,
            "--port", str(port), "--language", "en", "--disable-telemetry"]


def _cmd_board(args: argparse.Namespace) -> int:
    import subprocess

    from paddle_cnn.errors import UserError
    from paddle_cnn.training import RunLayout
    from paddle_cnn.training.callbacks import VDL_FILE

    runs = args.runs.resolve()
    if not runs.is_dir():
        raise UserError(f"{args.runs}: no such folder (give a run folder or a folder of runs)")
    if not any(runs.rglob(VDL_FILE)):
        raise UserError(f"{args.runs}: holds no VisualDL logs (vdl/{VDL_FILE} in a run folder)")
    # VisualDL names each run by its path under a --logdir: started beside the run folders and given
    # their names, it shows "NET/vdl" rather than absolute paths.
    if RunLayout.at(runs).vdl.is_dir():
        cwd, logdirs = runs.parent, [runs.name]
    else:
        cwd, logdirs = runs, sorted(p.name for p in runs.iterdir() if p.is_dir() and any(p.rglob(VDL_FILE)))
    _refuse_busy_port(args.host, args.port)
    print(f"VisualDL: http://{args.host}:{args.port}/  (logs from {args.runs}; Ctrl-C stops it)", flush=True)
    server = subprocess.Popen(board_command(logdirs, args.host, args.port), cwd=cwd, preexec_fn=_die_with_parent)
    try:
        return server.wait()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the server goes down with us
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _refuse_busy_port(host: str, port: int) -> None:
    """VisualDL prints "Port ... is in use" and then hangs instead of exiting: ask the system first."""
    import errno
    import socket

    from paddle_cnn.errors import UserError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as VisualDL's server binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is in use by another program (another paddle-cnn board?); "
                                "stop it or choose another --port") from None
            if exc.errno == errno.EACCES:
                raise UserError(f"port {port} on {host} needs privileges; choose a --port above 1023") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UserError(f"--host {host}: not an address of this machine") from None
            raise


def _die_with_parent() -> None:
    """In the VisualDL child: the kernel sends it SIGTERM when ``board`` dies, even by SIGKILL."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def build_parser() -> argparse.ArgumentParser:
    from paddle_cnn.training import add_config_args
    from paddle_cnn.training.parallel import add_processes_arg

    parser = argparse.ArgumentParser(prog="paddle-cnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered networks and their default input sizes")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'lenet*'")
    p.add_argument("--markdown", action="store_true",
                   help="a table with params, FLOPs and receptive field at the declared input size (README's)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("datasets", help="list the registered datasets (kind, input shape, classes, sizes)")
    p.add_argument("--kind", choices=["images", "scene"], default=None, help="only datasets of this kind")
    p.add_argument("--markdown", action="store_true", help="a table of their files, keys and md5s (README's)")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("summary", help="paddle.summary plus per-layer output size, receptive field and FLOPs")
    p.add_argument("name", help="a registered network (see `list`)")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="input shape without batch, channels first (default: the net's declared size)")
    p.add_argument("--in-channels", type=int, default=None, help="input channels (default: the declared ones)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="batch size shown by paddle.summary")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("train", help="train a registered net on Fashion-MNIST, MNIST or CIFAR-10 into a run folder")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/NET)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue this run folder")
    p.add_argument("--overwrite", action="store_true", help="start again in a folder that holds a run")
    add_processes_arg(p)
    add_config_args(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="whole-set loss and accuracy of a run's checkpoint")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--which", default="best", help="best, latest or epoch_N (default: best)")
    p.add_argument("--split", nargs="+", default=["val", "test"], choices=["train", "val", "test"])
    p.add_argument("--data-dir", default=None, help="where the IDX data is now, if it moved since training")
    p.add_argument("--train-csv", default=None, help="the training CSV, if the run used one and it moved")
    p.add_argument("--test-csv", default=None, help="the test CSV, if the run used one and it moved")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                   help="auto: the GPU when this Paddle has CUDA and sees one (default: auto)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="top-k classes for your own image files (PNG, JPEG, ...), or the "
                                       "classification map of a hyperspectral scene (.mat) for a scene model")
    p.add_argument("model", type=Path, help="a run folder or an export folder")
    p.add_argument("images", nargs="+", help="image files (or .mat scenes)")
    p.add_argument("--key", default=None, help="a scene: the cube's key in the .mat file (default: its only 3-D array)")
    p.add_argument("--map-dir", type=Path, default=Path("."), help="a scene: where STEM_map.png/.npz go (default: .)")
    p.add_argument("--which", default="best", help="checkpoint of a run folder (default: best)")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="class names: English or the tutorial's Chinese")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                   help="make the object light on dark like the training data (auto: when the border is light)")
    p.add_argument("--save-grid", type=Path, default=None, metavar="PNG",
                   help="save the inputs as the model saw them, with predictions")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                   help="for a run folder (an export always predicts on CPU, threads = the cores this process "
                        "may use); default: auto")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("explain", help="feature maps, Grad-CAM and effective receptive fields of a run's net on "
                                       "your images (PNGs)")
    p.add_argument("run_dir", type=Path, help="a run folder")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--out", type=Path, default=Path("explain"), help="folder for the PNGs (default: explain)")
    p.add_argument("--which", default="best", help="checkpoint of the run (default: best)")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="class names: English or the tutorial's Chinese")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                   help="make the object light on dark like the training data (auto: when the border is light)")
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("export", help="write an inference model (paddle.jit.save) and its metadata; "
                                      "paddle-cnn predict runs it on CPU through Paddle Inference with oneDNN")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--which", default="best", help="checkpoint to export (default: best)")
    p.add_argument("--out", type=Path, default=None, help="export folder (default: RUN_DIR/export)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("board", help="start VisualDL on run folders and print its address")
    p.add_argument("runs", type=Path, help="a run folder or a folder of runs (e.g. runs/dilated_vs_standard)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8040)
    p.set_defaults(func=_cmd_board)
    return parser




def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = None if argv is None else list(argv)  # what a --processes relaunch repeats
    return run_command(lambda _: args.func(args), prog="paddle-cnn")
