"""Results tables generated from files, so README numbers come from files and commands.

    python -m paddle_cnn.report runs/dilated_vs_standard/*/            # run folders (results.json)
    python -m paddle_cnn.report --columns zoo docs/results/classic_zoo/*.json
    python -m paddle_cnn.report docs/results/speed_threads1.json      # a table a benchmark saved
    python -m paddle_cnn.report --save docs/results/classic_zoo runs/classic_zoo/*/
    python -m paddle_cnn.report --columns zoo --curves C.png --cost-accuracy A.png docs/results/classic_zoo/*.json
    python -m paddle_cnn.report --readme README.md [--check]

Every table in README sits between ``<!-- table: COMMAND -->`` and ``<!-- end table -->``;
``--readme`` reruns each COMMAND (``python -m paddle_cnn.report ...`` or ``paddle-cnn list
--markdown``) and writes its output in between, ``--check`` only says which ones differ.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shlex
from pathlib import Path
from typing import Iterable, List, Optional

from .errors import UserError
from .fileio import atomic_write_text

COLUMNS = [
    ("net", "net", "{}"),
    ("data", "dataset", "{}"),
    ("params", "params", "{:,}"),
    ("receptive field", "receptive_field", "{}"),
    ("epochs", "epochs", "{}"),
    ("val acc", "val.acc", "{:.4f}"),
    ("val loss", "val.loss", "{:.4f}"),
    ("test acc", "test.acc", "{:.4f}"),
    ("test loss", "test.loss", "{:.4f}"),
    ("s/epoch", "seconds_per_epoch", "{:.1f}"),
    ("train img/s", "train_images_per_s", "{:,.0f}"),
]

# The classic-zoo table: cost (params, FLOPs, time on this machine), accuracy, and how to reproduce.
ZOO_COLUMNS = [
    ("net", "net", "{}"),
    ("input", "input_shape", "{}"),
    ("params", "params", "{:,}"),
    ("MFLOPs/img", "mflops", "{:.1f}"),
    ("epochs", "epochs", "{}"),
    ("s/epoch", "seconds_per_epoch", "{:.0f}"),
    ("train img/s", "train_images_per_s", "{:,.0f}"),
    ("val acc", "val.acc", "{:.4f}"),
    ("test acc", "test.acc", "{:.4f}"),
    ("test loss", "test.loss", "{:.4f}"),
    ("EMA test acc", "ema.test.acc", "{:.4f}"),  # the weights' moving average, for recipes that keep one
    ("command", "command", "`{}`"),
]
# The same net in fp32 and bf16: what the precision costs in accuracy, and on which CPU (speed: benchmarks).
PRECISION_COLUMNS = [
    ("net", "net", "{}"),
    ("precision", "precision", "{}"),
    ("epochs", "epochs", "{}"),
    ("val acc", "val.acc", "{:.4f}"),
    ("test acc", "test.acc", "{:.4f}"),
    ("test loss", "test.loss", "{:.4f}"),
    ("CPU", "cpu", "{}"),
    ("command", "command", "`{}`"),
]
# A warm start beside the same run from scratch: where the first weights came from, what it gave.
INIT_COLUMNS = [
    ("net", "net", "{}"),
    ("data", "dataset", "{}"),
    ("first weights", "init_from", "{}"),
    ("epochs", "epochs", "{}"),
    ("val acc", "val.acc", "{:.4f}"),
    ("test acc", "test.acc", "{:.4f}"),
    ("test loss", "test.loss", "{:.4f}"),
    ("command", "command", "`{}`"),
]
# Runs of a few steps on a few images (the tf.keras tutorial's demo): the run folder names the part,
# and the final training loss beside the accuracy says whether a net learned at all.
KERAS_COLUMNS = [
    ("run", "run_dir", "{}"),
    ("input", "input_shape", "{}"),
    ("train images", "images.train", "{:,}"),
    ("epochs", "epochs", "{}"),
    ("final train loss", "final_train_loss", "{:.3f}"),
    ("val acc", "val.acc", "{:.4f}"),
    ("test acc", "test.acc", "{:.4f}"),
    ("test images", "images.test", "{:,}"),
    ("s/epoch", "seconds_per_epoch", "{:.0f}"),
    ("CPU", "cpu", "{}"),
    ("command", "command", "`{}`"),
]
TABLES = {"default": COLUMNS, "zoo": ZOO_COLUMNS, "precision": PRECISION_COLUMNS, "init": INIT_COLUMNS,
          "keras": KERAS_COLUMNS}
# Left-aligned columns; numbers align right.
TEXT_KEYS = ("net", "dataset", "command", "measurement", "precision", "cpu", "init_from", "run_dir")


def final_train_loss(results: dict) -> Optional[float]:
    """The last epoch's training loss (its running mean), None for results that kept no history."""
    history = results.get("history") or []
    return history[-1]["train_loss"] if history else None


def _get(results: dict, dotted: str):
    if dotted == "mflops":  # forward FLOPs per image, in millions
        return None if results.get("flops") is None else results["flops"] / 1e6
    if dotted == "precision":  # runs from before the field computed in fp32, the only precision then
        return results.get("precision", "fp32")
    if dotted == "init_from":  # a warm start: the source (its checkpoint) and what was left fresh
        init = results.get("init")
        if not init:
            return "fresh (seeded)"
        which = f" ({init['which']})" if init.get("which") else ""
        skipped = f", {len(init['skipped'])} tensors fresh" if init.get("skipped") else ""
        return f"{init['path']}{which}{skipped}"
    if dotted == "final_train_loss":
        return final_train_loss(results)
    if dotted == "command":  # the first command, then any resumes
        return " ; ".join(results.get("commands") or []) or None
    value = results
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return spec.format(value)


class ReportError(UserError):
    """A results file or README block that cannot be turned into a table."""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: missing; has this run finished?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON file ({exc})") from None


def by_cost(results: dict) -> tuple:
    """Sort key of the zoo's tables and pictures: cheapest net (forward FLOPs) first, then by name."""
    return (results.get("flops") or 0, results["net"])


def _metrics_history(run_dir: Path) -> List[dict]:
    """Per-epoch rows of a run folder's metrics.csv (runs written before results.json kept them)."""
    path = run_dir / "metrics.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"{path}: not a readable CSV file ({exc})") from None
    history = []
    for i, row in enumerate(rows, start=2):
        try:
            history.append({k: (None if v in ("", None) else int(v) if k == "epoch" else float(v))
                            for k, v in row.items()})
        except (TypeError, ValueError):
            raise ReportError(f"{path}: row {i}: expected numbers, got {row}") from None
    return history


def load_results(paths: Iterable[Path]) -> List[dict]:
    """Results of run folders (their results.json) or of saved results files (``--save``)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            results = _read_json(p / "results.json")
            results["run_dir"] = str(p.absolute())  # where it is now, whatever the folder was called then
            if isinstance(results, dict) and "history" not in results:
                results["history"] = _metrics_history(p)
        else:
            results = _read_json(p)
        if not isinstance(results, dict) or "net" not in results:
            raise ReportError(f"{p}: not a run's results (a JSON object with 'net', 'val', 'test', ...)")
        out.append(results)
    return out


def saved_table(path: Path) -> str:
    """A table a benchmark saved: {"columns": [[header, key, format], ...], "rows": [{key: value}, ...]}."""
    data = _read_json(path)
    try:
        columns = [(str(h), str(k), str(f)) for h, k, f in data["columns"]]
        rows_ = list(data["rows"])
    except (TypeError, KeyError, ValueError):
        raise ReportError(f"{path}: expected 'columns' as [header, key, format] triples and 'rows'") from None
    return markdown_table(rows_, columns)


def save_results(run_dirs: Iterable[Path], out: Path) -> List[Path]:
    """Each run's results.json as OUT/NET.json: the small source data of a README table (no checkpoints)."""
    written = []
    for results in load_results(run_dirs):
        results["run_dir"] = _relative(Path(results["run_dir"]))
        if isinstance(results.get("init"), dict) and results["init"].get("path"):
            results["init"]["path"] = _relative(Path(results["init"]["path"]))
        path = Path(out) / f"{results['net']}.json"
        atomic_write_text(path, json.dumps(results, indent=2) + "\n")
        written.append(path)
    return written


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def rows(results: List[dict], columns=COLUMNS) -> List[List[str]]:
    """The table's cells, one list per run, formatted as in the markdown table."""
    return [[_fmt(_get(r, key), spec) for _, key, spec in columns] for r in results]


def csv_text(results: List[dict], columns=COLUMNS) -> str:
    """The same columns as the markdown table, with unformatted values for machines."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([c[0] for c in columns])
    for r in results:
        writer.writerow(["x".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                         for v in (_get(r, key) for _, key, _ in columns)])
    return buf.getvalue()


def markdown_table(results: List[dict], columns=COLUMNS) -> str:
    header = "| " + " | ".join(c[0] for c in columns) + " |"
    rule = "|" + "|".join("---" if c[1] in TEXT_KEYS else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(cells) + " |" for cells in rows(results, columns)]
    return "\n".join([header, rule, *body])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m paddle_cnn.report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help="run folders (results.json), saved results (NET.json) or a saved benchmark table")
    parser.add_argument("--columns", choices=sorted(TABLES), default="default",
                        help="which table: default (the experiments' comparison), zoo (cost, accuracy, command), "
                             "precision (fp32 against bf16) or init (warm starts beside fresh runs)")
    parser.add_argument("--save", type=Path, metavar="DIR", help="copy each run's results.json to DIR/NET.json")
    parser.add_argument("--curves", type=Path, metavar="PNG",
                        help="also draw each run's accuracy per epoch, one panel per net (runs with a history)")
    parser.add_argument("--cost-accuracy", type=Path, metavar="PNG",
                        help="also draw test accuracy against FLOPs and seconds per epoch")
    parser.add_argument("--title", default="", help="the pictures' title")
    parser.add_argument("--readme", type=Path, metavar="MD", help="regenerate every table block of this file")
    parser.add_argument("--check", action="store_true", help="with --readme: change nothing, exit 1 if it differs")
    return parser


def table(args: argparse.Namespace, results: Optional[List[dict]] = None) -> str:
    """The markdown table for parsed ``paths``/``--columns`` (``results``: those paths, loaded already)."""
    if not args.paths:
        raise ReportError("give run folders, saved results or a saved table")
    if len(args.paths) == 1 and args.paths[0].is_file():
        data = _read_json(args.paths[0])
        if isinstance(data, dict) and "rows" in data and "columns" in data:
            return saved_table(args.paths[0])
    results = load_results(args.paths) if results is None else list(results)
    if args.columns == "zoo":  # cheapest net first, as experiments.classic_zoo writes zoo.md
        results.sort(key=by_cost)
    return markdown_table(results, TABLES[args.columns])


BLOCK = re.compile(r"^(<!-- table: (?P<command>[^\n]+?) -->\n)(?P<body>.*?)(^<!-- end table -->)", re.DOTALL | re.MULTILINE)


def run_block_command(command: str, base: Path) -> str:
    """The output of a README block's command, run in-process from ``base`` (the README's folder)."""
    argv = shlex.split(command)
    if argv[:3] == ["python", "-m", "paddle_cnn.report"]:
        expanded: List[str] = []
        for a in argv[3:]:  # globs as a shell expands them (sorted), relative to the README's folder
            matches = sorted(str(p.relative_to(base)) for p in base.glob(a)) if "*" in a else []
            expanded += matches or [a]
        args = build_parser().parse_args(expanded)
        previous = Path.cwd()
        os.chdir(base)
        try:
            return table(args)
        finally:
            os.chdir(previous)
    if argv == ["paddle-cnn", "list", "--markdown"]:
        from . import nets
        from .cli import network_table

        return network_table(nets.list_nets("*"))
    if argv[:2] == ["paddle-cnn", "datasets"] and "--markdown" in argv:
        from .datasets import registry

        kind = argv[argv.index("--kind") + 1] if "--kind" in argv else None
        return registry.files_table(kind)
    raise ReportError(f"README block command {command!r}: only 'python -m paddle_cnn.report ...', "
                      "'paddle-cnn list --markdown' and 'paddle-cnn datasets --markdown' regenerate tables")


def update_readme(path: Path, check: bool = False) -> List[str]:
    """Regenerate every table block of ``path``; returns the commands whose output differed."""
    text = path.read_text(encoding="utf-8")
    stale: List[str] = []

    def regenerate(m: re.Match) -> str:
        body = run_block_command(m.group("command"), path.parent) + "\n"
        if body != m.group("body"):
            stale.append(m.group("command"))
        return m.group(1) + body + m.group(4)

    new = BLOCK.sub(regenerate, text)
    outside = BLOCK.sub("", new)
    loose = [line for line in outside.splitlines() if line.startswith("|")]
    if loose:
        raise ReportError(f"{path}: a table outside any '<!-- table: COMMAND -->' block: {loose[0][:80]!r}")
    if stale and not check:
        atomic_write_text(path, new)
    return stale


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.readme is not None:
        stale = update_readme(args.readme, check=args.check)
        for command in stale:
            print(f"{args.readme}: {'differs from' if args.check else 'regenerated'}: {command}")
        return 1 if stale and args.check else 0
    if args.save is not None:
        for path in save_results(args.paths, args.save):
            print(f"saved {path}")
        return 0
    drawing = bool(args.curves or args.cost_accuracy)
    results = load_results(args.paths) if drawing and args.paths else None  # read once, for table and pictures
    print(table(args, results))
    if drawing:
        draw(results, args)
    return 0


def draw(results: List[dict], args: argparse.Namespace) -> None:
    """The pictures ``--curves`` / ``--cost-accuracy`` ask for, cheapest net first."""
    from .training import plots

    results = sorted(results, key=by_cost)
    if args.curves:
        without = [r["net"] for r in results if not r.get("history")]
        if len(without) == len(results):
            raise ReportError("--curves: none of these results holds a per-epoch history")
        plots.curves_grid(results, args.curves, title=args.title)
        print(f"saved {args.curves}" + (f" (no per-epoch history kept for: {', '.join(without)})" if without else ""))
    if args.cost_accuracy:
        plots.cost_accuracy(results, args.cost_accuracy, **({"title": args.title} if args.title else {}))
        print(f"saved {args.cost_accuracy}")


if __name__ == "__main__":
    from .entry import run_command

    raise SystemExit(run_command(main, prog="python -m paddle_cnn.report"))
