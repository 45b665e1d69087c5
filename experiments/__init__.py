"""Recipes: each module is `python -m experiments.NAME` with a `main(argv=None)` that wires paddle_cnn pieces together."""
