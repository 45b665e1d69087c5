"""Data-loading figures on real Fashion-MNIST: CSV first load and cached load, IDX load, and
images/s of one full pass at batch 64 through our BatchLoader and through paddle.io.DataLoader.

    python benchmarks/data_loading.py --data-dir ../shared/data [--save docs/results/data_loading.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from paddle_cnn import datasets as D, report  # first: it quiets Paddle's import-time ccache warning

import paddle  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _pass_rate(loader, n_images: int) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return n_images / (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding fashion-mnist/ (default: $PADDLE_CNN_DATA)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--save", type=Path, default=None, metavar="JSON",
                        help="also save the table (python -m paddle_cnn.report JSON prints it again)")
    args = parser.parse_args(argv)

    idx_train, t_idx = _timed(lambda: D.FashionMNISTIDX("train", args.data_dir, download=False))
    rows = [("IDX load, 60k train images (gunzip + md5 + parse)", f"{t_idx:.2f} s")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = D.write_csv(tmp / "fashion-mnist_train.csv", idx_train.images, labels=idx_train.labels)
        size_mb = csv_path.stat().st_size / 1e6
        _, t_first = _timed(lambda: D.FashionMNISTCSV(csv_path, cache_dir=tmp / "cache"))
        csv_ds, t_cached = _timed(lambda: D.FashionMNISTCSV(csv_path, cache_dir=tmp / "cache"))
    rows += [(f"CSV first load, 60k rows ({size_mb:.0f} MB, parse + validate + cache)", f"{t_first:.2f} s"),
             ("CSV cached load (content hash + .npz)", f"{t_cached:.2f} s")]

    train, _ = D.train_val_split(csv_ds)
    bs = args.batch_size
    ours = _pass_rate(train.loader(bs, shuffle=True), len(train))
    reference = _pass_rate(paddle.io.DataLoader(train, batch_size=bs, shuffle=True), len(train))
    rows += [(f"BatchLoader full pass, 59k images, batch {bs}", f"{ours:,.0f} images/s"),
             (f"paddle.io.DataLoader (per-item __getitem__), batch {bs}", f"{reference:,.0f} images/s")]

    columns = [("measurement", "measurement", "{}"), ("result", "result", "{}")]
    table = [{"measurement": name, "result": value} for name, value in rows]
    if args.save is not None:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        saved = {"command": " ".join(["python benchmarks/data_loading.py", *sys.argv[1:]]), "columns": columns,
                 "rows": table}
        args.save.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    print(report.markdown_table(table, columns))


if __name__ == "__main__":
    main()
