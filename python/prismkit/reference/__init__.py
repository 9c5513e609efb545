"""Pure-PyTorch references of every prismkit op: readable, dense where that is clearest,
used as the test oracle and, where it is the plain way to do it, as a benchmark baseline."""

from . import cswin, sae, splat  # noqa: F401
