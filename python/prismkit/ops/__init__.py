"""Public functional wrappers of the prismkit ops, one module per core."""
from . import cswin, sae  # noqa: F401

