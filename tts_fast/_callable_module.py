"""A module that can also be called like a function: how a package attribute stays both.

``tts_fast.search`` is the search package (``import tts_fast.search.dfs as m`` must give the
module) and the stable entry point ``tts.search(model, verifier, method, ...)``. A package
attribute can hold only one object, and a function there hides the package from ``import a.b.c``
(Python resolves ``a.b`` as an attribute first). So the module object itself is made callable:
its class becomes a ModuleType subclass whose ``__call__`` forwards to the function. Attribute
access, submodule imports, ``importlib.import_module`` and ``mock.patch`` see a plain module;
calling it is calling the function, with the function's signature (``inspect.signature``) and
docstring (``help`` shows both). The same mechanism gives renamed loaders a deprecation path:
``tts.rl.policy(...)`` still works (with a DeprecationWarning) while ``tts_fast.rl.policy`` is the
module.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
import warnings
from typing import Callable, Optional


def make_callable(module_name: str, function: Callable, *, renamed_to: Optional[str] = None) -> types.ModuleType:
    """Make the (imported) module ``module_name`` callable as ``function``; returns the module.

    Args:
        module_name: the module's full name (it must be in ``sys.modules``).
        function: what calling the module calls.
        renamed_to: the function's new public name when calling the module is deprecated: each call
            then warns (DeprecationWarning) and names it.
    """
    module = sys.modules[module_name]
    message = None
    if renamed_to is not None:
        message = f"calling the module {module_name} is deprecated: it was a function, now named {renamed_to}"

    def __call__(self, *args, **kwargs):
        if message is not None:
            warnings.warn(message, DeprecationWarning, stacklevel=2)
        return function(*args, **kwargs)

    def __reduce__(self):
        # a module object does not pickle; this one pickles as a reference to its module
        return importlib.import_module, (module_name,)

    __call__.__doc__ = function.__doc__
    module.__class__ = type("CallableModule", (types.ModuleType,), {"__call__": __call__, "__reduce__": __reduce__})
    module.__signature__ = inspect.signature(function)
    return module
