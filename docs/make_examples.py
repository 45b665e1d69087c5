"""Make the README's example "photos": Fashion-MNIST test images as a user would photograph them
(dark object on a white background, larger, JPEG), so `paddle-cnn predict` has inputs to show.

    python docs/make_examples.py --data-dir ../shared/data            # -> runs/examples/
    python docs/make_examples.py --data-dir ../shared/data --out docs/examples   # refresh the committed copies
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from paddle_cnn import datasets as D


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/examples"),
                        help="where to write (default runs/examples; docs/examples holds the committed copies)")
    args = parser.parse_args()
    test = D.FashionMNISTIDX("test", args.data_dir, download=False)
    names = D.class_names()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for label in range(10):
        i = int(rng.choice(np.flatnonzero(test.labels == label)))
        big = cv2.resize(255 - test.images[i], (224, 224), interpolation=cv2.INTER_CUBIC)
        canvas = np.full((300, 260), 255, np.uint8)  # off-centre, not square: predict must fit it
        canvas[50:274, 20:244] = big
        slug = names[label].lower().replace("/", "-").replace(" ", "-")
        cv2.imwrite(str(args.out / f"{label}-{slug}.jpg"), cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(args.out / f"{label}-{slug}.jpg", f"(test image {i})")


if __name__ == "__main__":
    main()
