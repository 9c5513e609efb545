"""prismkit: fused kernels for recent interpretability and efficiency methods, as PyTorch ops.

``import prismkit`` loads the compiled library, which registers every op under
``torch.ops.prismkit``, and the Python side of each op (torch.compile support, autograd,
Triton kernels for CUDA tensors). Functional wrappers live in ``prismkit.ops``; pure-PyTorch
references of the same math in ``prismkit.reference``.
"""

from . import _build_info


def _check_torch_version(built: str, running: str) -> None:
    """Refuse a torch other than the one the library was compiled against (C++ ABI)."""
    if built != running:
        raise ImportError(
            f"prismkit was built against torch {built}, but torch {running} is installed. "
            f"Its compiled kernels link against torch's C++ library and only work with the torch "
            f"they were built with: install torch=={built.split('+')[0]}, or rebuild prismkit "
            f"for this torch with `pip install --no-build-isolation .` in the prismkit source tree."
        )


import torch  # noqa: E402  (loads libtorch, which the compiled library links against)

_check_torch_version(_build_info.TORCH_VERSION, torch.__version__)

from . import _C  # noqa: E402, F401, I001  (loads the library: registers the ops with the dispatcher)
from . import _cpu, ops, reference  # noqa: E402
from .ops.sae import SparseCode  # noqa: E402

_cpu.warn_if_request_ignored()

__version__ = _build_info.VERSION
__all__ = ["ops", "reference", "SparseCode", "__version__"]

# The methods (prismkit.sae, prismkit.cswin, prismkit.splat, prismkit.quant) load on first use, so `import prismkit` stays light
# (prismkit.cswin imports timm where it is installed) and `prismkit.sae.TopKSAE` works after it.
_METHODS = ("sae", "cswin", "splat", "quant")


def __getattr__(name: str):
    if name in _METHODS:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'prismkit' has no attribute {name!r}")
