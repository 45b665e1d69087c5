"""Every network of the tutorials, registered by name: ``list_nets()``, ``create(name, ...)``.

Importing this package imports each family module, which registers its builders.
"""
from ._registry import NetInfo, UnknownNetError, create, flat_features, get_info, list_nets, register
from . import lenet, seed_cnns  # noqa: F401  (imported for registration)

__all__ = ["NetInfo", "UnknownNetError", "create", "flat_features", "get_info", "list_nets", "register"]
