"""`python -m paddle_cnn.datasets export-csv`: write Kaggle-style CSVs from the official IDX files."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from . import csv_format, idx
from .errors import DataError


def export_csv(dataset: str, root: Optional[str], out: Path, compress: bool, unlabelled_test: bool,
               download: bool = True) -> List[Path]:
    """Write ``{dataset}_train.csv`` and ``{dataset}_test.csv`` (labelled), optionally the unlabelled test."""
    suffix = ".csv.gz" if compress else ".csv"
    written = []
    for mode in ("train", "test"):
        images, labels = idx.load_idx(dataset, mode, root, download_missing=download)
        started = time.perf_counter()
        written.append(csv_format.write_csv(out / f"{dataset}_{mode}{suffix}", images, labels=labels))
        print(f"wrote {written[-1]} ({len(images)} rows, {time.perf_counter() - started:.1f} s)")
        if mode == "test" and unlabelled_test:
            # The competition layout: an ID column (the row index) instead of the label.
            written.append(csv_format.write_csv(out / f"{dataset}_test_data{suffix}", images,
                                                ids=np.arange(len(images))))
            print(f"wrote {written[-1]} ({len(images)} rows, no labels)")
    return written


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paddle_cnn.datasets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export-csv", help="write Kaggle-style train/test CSVs from the IDX files")
    p.add_argument("--dataset", default="fashion-mnist", choices=sorted(idx.SPECS))
    p.add_argument("--data-dir", default=None, help=f"folder holding {{dataset}}/ (default: ${idx.ENV_VAR} or data/)")
    p.add_argument("--out", type=Path, required=True, help="folder to write the CSVs into")
    p.add_argument("--gzip", action="store_true", help="write .csv.gz")
    p.add_argument("--unlabelled-test", action="store_true",
                   help="also write {dataset}_test_data.csv in the unlabelled ID,pixel1.. layout")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")
    args = parser.parse_args(argv)
    try:
        export_csv(args.dataset, args.data_dir, args.out, args.gzip, args.unlabelled_test, not args.no_download)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
