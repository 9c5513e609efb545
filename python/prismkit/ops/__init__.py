"""Public functional wrappers of the prismkit ops, one package per core (``prismkit.ops.<core>``).

Every subpackage here is a core: importing it registers its fake implementations, autograd and
CUDA-side kernels, and its entry in ``prismkit.ops.registry`` (the list of cores and ops that
``python -m prismkit info``, the tests and the benchmark runner read). A new core is picked up
by adding its package; nothing here lists the cores by hand.
"""

import importlib
import pkgutil

from . import registry  # noqa: F401  (prismkit.ops.registry, for the users of the list)

for _module in pkgutil.iter_modules(__path__):
    if _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")
