"""Every network of the tutorials, registered by name: ``list_nets()``, ``create(name, ...)``.

Importing this package imports each family module, which registers its builders.
"""
from ._registry import NetInfo, UnknownNetError, create, flat_features, get_info, list_nets, register
from . import alexnet, googlenet, hybridsn, lenet, mobilenet, nin, resnet, seed_cnns, vgg  # noqa: F401  (registration)

__all__ = ["NetInfo", "UnknownNetError", "create", "flat_features", "get_info", "list_nets", "register"]
