"""Recipes: each module is `python -m experiments.NAME` with a `main(argv=None)` that wires paddle_cnn pieces together."""
import paddle_cnn  # noqa: F401  first, so a missing Paddle is reported as the one-line install hint
