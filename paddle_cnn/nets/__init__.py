"""Every network of the tutorials, registered by name: ``list_nets()``, ``create(name, ...)``.

Importing this package imports each family module, which registers its builders.
"""
from ._registry import (
    InputTooSmallError, NetInfo, UnknownNetError, create, eval_mode, flat_features, get_info, list_nets, misfit, probe, register,
)
from ._layers import PRECISIONS, set_precision
from . import alexnet, googlenet, hybridsn, lenet, mobilenet, nin, resnet, seed_cnns, vgg  # noqa: F401  (registration)

__all__ = ["InputTooSmallError", "NetInfo", "UnknownNetError", "create", "eval_mode", "flat_features", "get_info", "list_nets",
           "misfit", "probe", "register", "PRECISIONS", "set_precision"]
