"""Results tables generated from run folders (results.json), so README numbers come from files.

    python -m paddle_cnn.report runs/dilated_vs_standard/*/
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


def _get(results: dict, dotted: str):
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
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def rows(results: List[dict]) -> List[List[str]]:
    """The table's cells, one list per run, formatted as in the markdown table."""
    return [[_fmt(_get(r, key), spec) for _, key, spec in COLUMNS] for r in results]


def csv_text(results: List[dict]) -> str:
    """The same columns as the markdown table, with unformatted values for machines."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([c[0] for c in COLUMNS])
    for r in results:
        writer.writerow(["x".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)
                         for v in (_get(r, key) for _, key, _ in COLUMNS)])
    return buf.getvalue()


def markdown_table(results: List[dict]) -> str:
    header = "| " + " | ".join(c[0] for c in COLUMNS) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(cells) + " |" for cells in rows(results)]
    return "\n".join([header, rule, *body])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paddle_cnn.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders holding results.json")
    args = parser.parse_args(argv)
    print(markdown_table(load_results(args.run_dirs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
