"""Results tables generated from run folders (results.json), so README numbers come from files.

    python -m paddle_cnn.report runs/dilated_vs_standard/*/
    python -m paddle_cnn.report --columns zoo runs/classic_zoo/*/
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Iterable, List, Optional

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
    ("command", "command", "`{}`"),
]
TABLES = {"default": COLUMNS, "zoo": ZOO_COLUMNS}


def _get(results: dict, dotted: str):
    if dotted == "mflops":  # forward FLOPs per image, in millions
        return None if results.get("flops") is None else results["flops"] / 1e6
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


def load_results(run_dirs: Iterable[Path]) -> List[dict]:
    out = []
    for d in run_dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; has this run finished?")
        results = json.loads(path.read_text(encoding="utf-8"))
        results["run_dir"] = str(Path(d).absolute())  # where it is now, whatever the folder was called then
        out.append(results)
    return out


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
    rule = "|" + "|".join("---" if c[1] in ("net", "dataset", "command") else "---:" for c in columns) + "|"
    body = ["| " + " | ".join(cells) + " |" for cells in rows(results, columns)]
    return "\n".join([header, rule, *body])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paddle_cnn.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders holding results.json")
    parser.add_argument("--columns", choices=sorted(TABLES), default="default",
                        help="which table: default (the experiments' comparison) or zoo (cost, accuracy, command)")
    args = parser.parse_args(argv)
    results = load_results(args.run_dirs)
    if args.columns == "zoo":  # cheapest net first, as experiments.classic_zoo writes zoo.md
        results.sort(key=lambda r: (r.get("flops") or 0, r["net"]))
    print(markdown_table(results, TABLES[args.columns]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
