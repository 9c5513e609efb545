"""The argument contract of every op (the table in op_contracts.py), run through every
implementation that can run here, each raising the same exception type and message:

* ``cpu``: the C++ CPU kernel;
* ``fake``: the fake implementation (torch.compile, opcheck) on fake CPU tensors;
* ``triton``: the Triton launcher on CPU tensors under the interpreter (no GPU) for Triton ops;
* ``fake-cuda`` and ``triton-fake-cuda``: the same on fake CUDA tensors (no GPU needed), which is
  where the CUDA dtype lists are checked;
* ``cuda``: the real CUDA kernel (the CUDA C++ glue or the Triton kernel) where a GPU is present.
  Without one, the CUDA glue's checks are still covered: they are the very functions the CPU
  kernels call (csrc/<core>/<core>_checks.cpp).

Checks that read tensor values (index ranges, offsets, capacity signs) have no fake version.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from op_contracts import BAD, VALID
from sae_cases import HAS_CUDA, HAS_TRITON
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv

from prismkit.ops import registry


def outcome(fn, args):
    """(exception type, first line of its message), or None if the call succeeded."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return type(e), str(e).splitlines()[0]
    return None


def dispatcher_op(name):
    return getattr(torch.ops.prismkit, name)


def triton_launcher(name):
    return getattr(importlib.import_module(f"prismkit.triton_kernels.{registry.all_ops()[name].core}"), name)


def on_fake(name, args, device, launcher):
    """Run the op (or its Triton launcher) on fake copies of the CPU args, moved to device."""
    mode = FakeTensorMode(shape_env=ShapeEnv())  # a shape environment: row-compressed outputs have dynamic sizes
    with mode:
        fake = [mode.from_tensor(a, static_shapes=True) if isinstance(a, torch.Tensor) else a for a in args]
        fake = [a.to(device) if isinstance(a, torch.Tensor) and a.device.type == "cpu" else a for a in fake]
        return outcome(launcher(name), fake)


def on_cuda(name, args):
    return outcome(dispatcher_op(name), [a.cuda() if isinstance(a, torch.Tensor) and a.device.type == "cpu" else a
                                         for a in args])  # fmt: skip


def cpu_implementations(name, reads_data):
    """(label, run(args)) for the implementations that take the CPU tensors as they are."""
    impls = [("cpu", lambda args: outcome(dispatcher_op(name), args))]
    if not reads_data:
        impls.append(("fake", lambda args: on_fake(name, args, "cpu", dispatcher_op)))
    if registry.all_ops()[name].cuda == "triton" and HAS_TRITON and not HAS_CUDA:
        impls.append(("triton", lambda args: outcome(triton_launcher(name), args)))
    return impls


def cuda_implementations(name, reads_data):
    """(label, run(args)) for the implementations that see the tensors on a CUDA device."""
    impls = []
    if not reads_data:
        impls.append(("fake-cuda", lambda args: on_fake(name, args, "cuda", dispatcher_op)))
        if registry.all_ops()[name].cuda == "triton" and HAS_TRITON:
            impls.append(("triton-fake-cuda", lambda args: on_fake(name, args, "cuda", triton_launcher)))
    if HAS_CUDA:
        impls.append(("cuda", lambda args: on_cuda(name, args)))
    return impls


def argument_named(message: str) -> str:
    """ "prismkit::op: 'x' must ..." -> "prismkit::op: 'x'"."""
    return message.split(" must ")[0]


def test_the_table_covers_every_registered_op():
    assert set(VALID) == set(registry.all_ops())
    for name in registry.all_ops():
        assert sum(row.op == name for row in BAD) >= 4, f"{name}: add its bad inputs to tests/op_contracts.py"


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_call_runs_on_every_implementation(name):
    args = VALID[name]()
    for label, run in cpu_implementations(name, reads_data=False) + cuda_implementations(name, reads_data=False):
        if label != "triton-fake-cuda":  # a launcher on fake tensors can check but not launch
            assert run(args) is None, label


@pytest.mark.parametrize("row", BAD, ids=lambda row: f"{row.op}-{row.what}")
def test_bad_input_raises_the_same_error_everywhere(row):
    args = row.args()
    want_message = f"prismkit::{row.op}: {row.message}"
    if row.device in ("any", "cpu"):
        results = {label: run(args) for label, run in cpu_implementations(row.op, row.reads_data)}
        for label, got in results.items():
            assert got is not None, f"{label} accepted it"
            assert got[0] is row.error and got[1].startswith(want_message), (label, got)
        assert len(set(results.values())) == 1, results  # the same type and the whole same message
    if row.device in ("any", "cuda"):
        results = {label: run(args) for label, run in cuda_implementations(row.op, row.reads_data)}
        for label, got in results.items():
            assert got is not None, f"{label} accepted it"
            assert got[0] is row.error, (label, got)
            if row.device == "cuda":
                assert got[1].startswith(want_message), (label, got)
            else:  # the CPU message names the device and dtypes of the CPU; the argument is the same
                assert argument_named(got[1]) == argument_named(want_message), (label, got)
        assert len(set(results.values())) <= 1, results
