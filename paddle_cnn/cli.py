"""The `paddle-cnn` command (also `python -m paddle_cnn`): inspect the registered networks."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, List, Optional

from paddle_cnn import analysis, nets


def _cmd_list(args: argparse.Namespace) -> int:
    names = nets.list_nets(args.pattern)
    if not names:
        print(f"no registered network matches {args.pattern!r}", file=sys.stderr)
        return 1
    width = max(len(n) for n in names)
    for name in names:
        info = nets.get_info(name)
        size = "x".join(str(v) for v in info.input_size)
        print(f"{name.ljust(width)}  {size:>9}  {info.description}")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paddle-cnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the registered networks and their default input sizes")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'lenet*'")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("summary", help="paddle.summary plus per-layer output size and receptive field")
    p.add_argument("name", help="a registered network (see `list`)")
    p.add_argument("--input-size", type=int, nargs="+", metavar="N",
                   help="input shape without batch, channels first (default: the net's declared size)")
    p.add_argument("--in-channels", type=int, default=None, help="input channels (default: the declared ones)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="batch size shown by paddle.summary")
    p.set_defaults(func=_cmd_summary)
    return parser


def user_errors() -> tuple:
    """Exceptions that describe a problem with the user's input, shown as one line instead of a traceback."""
    from paddle_cnn.datasets import DataError
    from paddle_cnn.nets import UnknownNetError
    from paddle_cnn.training import CheckpointError, ConfigError, RunDirError

    return (DataError, UnknownNetError, CheckpointError, ConfigError, RunDirError, FloatingPointError)


def run_command(main: Callable[[Optional[List[str]]], object], argv: Optional[List[str]] = None,
                prog: str = "paddle-cnn") -> int:
    """Run ``main(argv)``; a user error becomes one line on stderr and exit status 2."""
    try:
        main(argv)
    except user_errors() as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (KeyError, ValueError) as exc:
        # Bad names and shapes are user errors: one line, no traceback.
        print(f"paddle-cnn: error: {exc}", file=sys.stderr)
        return 2
