"""Public functional wrappers of the prismkit ops, one module per core."""
from . import sae  # noqa: F401

