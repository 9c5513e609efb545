"""Quantized layers and the model transforms of ``prismkit.quant``.

``QuantLinear`` and ``QuantConv2d`` hold one packed weight each (``prismkit.ops.quant``'s layout:
codes, cluster ids, per group and cluster scales and zeros, all plain buffers) and compute with
``quant_linear``; a convolution unfolds its input (im2col) and runs the same product per group of
channels. Bias stays in float (as in optimum-quanto, which never quantizes it); activations stay in
float (weight-only, as the paper's experiments).

* ``quantize(model, bits, group_size, method, ranges, filter)``: every ``nn.Linear`` and
  ``nn.Conv2d`` (except MultiheadAttention's ``out_proj``, whose weight MultiheadAttention reads
  directly) becomes a quantized layer, in place. A layer too small to cluster (fewer than k weights
  per clustered row) is quantized with min-max.
* ``dequantize(model)``: back to float layers holding the dequantized weights.
* ``bits_per_weight(model)``: every stored byte of the quantized layers (codes, ids, scales,
  zeros) per weight.
* ``save_quantized(model, path)`` / ``load_quantized(model, path)``: a safetensors file of the
  quantized layers' tensors and the model's other parameters, with each layer's settings in the
  file's metadata (no pickled objects); loading rebuilds the quantized layers of a float model of
  the same architecture and loads every tensor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prismkit.ops import quant as ops

from .quantizers import pack_weight, quantize_weight

__all__ = ["QuantLinear", "QuantConv2d", "quantize", "dequantize", "bits_per_weight", "save_quantized",
           "load_quantized"]  # fmt: skip


class _QuantWeight(nn.Module):
    """The packed weight's buffers and settings, shared by QuantLinear and QuantConv2d."""

    def _init_weight(self, out_features, in_features, bits, group_size, clusters, scale_dtype, device):
        if bits not in (2, 4, 8):
            raise ValueError(f"{type(self).__name__}: bits must be 2, 4 or 8, got {bits}")
        if in_features % group_size:
            raise ValueError(f"{type(self).__name__}: group_size {group_size} must divide in_features {in_features}")
        self.bits, self.group_size, self.clusters = bits, group_size, clusters
        self.float_dtype = torch.float32  # the dtype to_float() gives (the original layer's)
        self.out_features, self.in_features = out_features, in_features
        G = in_features // group_size
        kw = dict(dtype=torch.uint8, device=device)
        self.register_buffer("codes", torch.zeros(out_features, math.ceil(in_features * bits / 8), **kw))
        ids = (out_features, math.ceil(in_features / 4)) if clusters > 1 else (0,)
        self.register_buffer("cluster_ids", torch.zeros(*ids, **kw))
        self.register_buffer("scales", torch.zeros(out_features, G, clusters, dtype=scale_dtype, device=device))
        self.register_buffer("zeros", torch.zeros(out_features, G, clusters, dtype=scale_dtype, device=device))

    def _set_packed(self, packed) -> None:
        with torch.no_grad():
            self.codes.copy_(packed.codes)
            self.cluster_ids.copy_(packed.cluster_ids.reshape(self.cluster_ids.shape))
            self.scales.copy_(packed.scales)
            self.zeros.copy_(packed.zeros)

    def weight_args(self) -> tuple:
        return (self.codes, self.cluster_ids, self.scales, self.zeros)

    def weight_meta(self) -> tuple:
        return (self.bits, self.group_size, self.out_features, self.in_features)

    def dequantized_weight(self) -> Tensor:
        """The float32 [out, in] weight the layer computes with."""
        return ops.quant_dequantize(*self.weight_args(), *self.weight_meta())

    def settings(self) -> dict:
        return {"bits": self.bits, "group_size": self.group_size, "clusters": self.clusters,
                "scale_dtype": str(self.scales.dtype).removeprefix("torch.")}  # fmt: skip


def _quantized(weight2d: Tensor, bits, group_size, method, ranges, k, per_row, scale_dtype):
    rows = weight2d.shape[1] if per_row else weight2d.numel()
    if method == "splitquant" and rows < k:
        method = "minmax"  # too few weights to cluster
    return quantize_weight(weight2d, bits=bits, group_size=group_size, method=method, ranges=ranges, k=k,
                           per_row_clusters=per_row, scale_dtype=scale_dtype)  # fmt: skip


class QuantLinear(_QuantWeight):
    """A quantized ``nn.Linear``: ``quant_linear(x, packed weight, bias)``. Build it with
    ``QuantLinear.from_linear(linear, bits, ...)`` (or ``quantize(model)``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, bits: int = 4,
                 group_size: Optional[int] = None, clusters: int = 3, scale_dtype: torch.dtype = torch.float16,
                 device=None, dtype=None):  # fmt: skip
        super().__init__()
        g = group_size if group_size is not None else in_features
        self._init_weight(out_features, in_features, bits, g, clusters, scale_dtype, device)
        self.float_dtype = dtype or torch.float32
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype)) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 4, group_size: int = 128, method: str = "splitquant",
                    ranges: str = "paper", k: int = 3, scale_dtype: torch.dtype = torch.float16) -> QuantLinear:  # fmt: skip
        qw = _quantized(linear.weight, bits, group_size, method, ranges, k, False, scale_dtype)
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, bits=bits,
                    group_size=qw.group_size, clusters=qw.scales.shape[2], scale_dtype=scale_dtype,
                    device=linear.weight.device, dtype=linear.weight.dtype)  # fmt: skip
        layer._set_packed(pack_weight(qw))
        layer.float_dtype = linear.weight.dtype
        if linear.bias is not None:
            with torch.no_grad():
                layer.bias.copy_(linear.bias)
        return layer

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return ops.quant_linear(x, *self.weight_args(), bias, *self.weight_meta())

    def to_float(self) -> nn.Linear:
        out = nn.Linear(self.in_features, self.out_features, self.bias is not None, device=self.codes.device,
                        dtype=self.float_dtype)  # fmt: skip
        with torch.no_grad():
            out.weight.copy_(self.dequantized_weight())
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
                f"group_size={self.group_size}, clusters={self.clusters}")  # fmt: skip


class QuantConv2d(_QuantWeight):
    """A quantized ``nn.Conv2d`` (any stride, padding, dilation, groups; padding modes by explicit
    padding): the input is unfolded (im2col) and each group of channels runs ``quant_linear`` with
    its rows of the packed weight; clusters are per output kernel, as the paper's."""

    def __init__(self, conv: nn.Conv2d, bits: int = 4, group_size: Optional[int] = None, clusters: int = 3,
                 scale_dtype: torch.dtype = torch.float16):  # fmt: skip
        super().__init__()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.dilation, self.groups = (
            conv.kernel_size,
            conv.stride,
            conv.dilation,
            conv.groups,
        )
        self.padding, self.padding_mode = conv.padding, conv.padding_mode
        self._pad = tuple(conv._reversed_padding_repeated_twice)
        K = (conv.in_channels // conv.groups) * conv.kernel_size[0] * conv.kernel_size[1]
        g = group_size if group_size is not None else K
        self._init_weight(conv.out_channels, K, bits, g, clusters, scale_dtype, conv.weight.device)
        self.bias = nn.Parameter(conv.bias.detach().clone()) if conv.bias is not None else None
        self.float_dtype = conv.weight.dtype

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, bits: int = 4, group_size: int = 128, method: str = "splitquant",
                  ranges: str = "paper", k: int = 3, scale_dtype: torch.dtype = torch.float16) -> QuantConv2d:  # fmt: skip
        w2d = conv.weight.detach().reshape(conv.out_channels, -1)
        qw = _quantized(w2d, bits, group_size, method, ranges, k, True, scale_dtype)
        layer = cls(conv, bits=bits, group_size=qw.group_size, clusters=qw.scales.shape[2], scale_dtype=scale_dtype)
        layer._set_packed(pack_weight(qw))
        return layer

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:  # unbatched [C, H, W], as nn.Conv2d takes it
            return self.forward(x[None])[0]
        padding = self.padding
        if self.padding_mode != "zeros" or isinstance(padding, str):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x, padding = F.pad(x, self._pad, mode=mode), 0
        B, _, H, W = x.shape
        kh, kw = self.kernel_size
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=padding, stride=self.stride)
        pad = (padding, padding) if isinstance(padding, int) else padding
        Ho = (H + 2 * pad[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        Wo = (W + 2 * pad[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        L = cols.shape[-1]
        groups, K = self.groups, self.in_features
        cols = cols.view(B, groups, K, L).permute(1, 0, 3, 2)  # [groups, B, L, K]
        per = self.out_channels // groups
        outs = []
        for g in range(groups):
            rows = slice(g * per, (g + 1) * per)
            weight = (self.codes[rows], self.cluster_ids[rows] if self.cluster_ids.numel() else self.cluster_ids,
                      self.scales[rows], self.zeros[rows])  # fmt: skip
            bias = self.bias[rows].to(x.dtype) if self.bias is not None else None
            outs.append(ops.quant_linear(cols[g], *weight, bias, self.bits, self.group_size, per, K))
        y = torch.cat(outs, dim=-1)  # [B, L, out]
        return y.transpose(1, 2).reshape(B, self.out_channels, Ho, Wo)

    def to_float(self) -> nn.Conv2d:
        out = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                        self.dilation, self.groups, self.bias is not None, self.padding_mode,
                        device=self.codes.device, dtype=self.float_dtype)  # fmt: skip
        with torch.no_grad():
            out.weight.copy_(self.dequantized_weight().view_as(out.weight))
            if self.bias is not None:
                out.bias.copy_(self.bias)
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"groups={self.groups}, bits={self.bits}, group_size={self.group_size}, clusters={self.clusters}")  # fmt: skip


def _targets(model: nn.Module, filter: Optional[Callable[[str, nn.Module], bool]]):
    for name, module in model.named_modules():
        if not name or type(module).__name__ == "NonDynamicallyQuantizableLinear":
            continue
        if type(module) in (nn.Linear, nn.Conv2d) and (filter is None or filter(name, module)):
            yield name, module


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def quantize(model: nn.Module, bits: int = 4, group_size: int = 128, method: str = "splitquant", ranges: str = "paper",
             filter: Optional[Callable[[str, nn.Module], bool]] = None, k: int = 3,
             scale_dtype: torch.dtype = torch.float16) -> nn.Module:  # fmt: skip
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` (those ``filter(name, module)``
    accepts) by ``QuantLinear`` / ``QuantConv2d``, in place; returns ``model``. ``method``
    ``"splitquant"`` (k clusters, ``ranges`` ``"paper"`` or ``"tight"``) or ``"minmax"``;
    ``group_size`` follows optimum-quanto's rule (``effective_group_size``); 8 bits and the paper's
    ranges: symmetric per row, as quanto's qint8. See ``prismkit.quant.quantizers``."""
    for name, module in list(_targets(model, filter)):
        kw = dict(bits=bits, group_size=group_size, method=method, ranges=ranges, k=k, scale_dtype=scale_dtype)
        new = (
            QuantLinear.from_linear(module, **kw)
            if isinstance(module, nn.Linear)
            else QuantConv2d.from_conv(module, **kw)
        )
        _replace(model, name, new)
    return model


def dequantize(model: nn.Module) -> nn.Module:
    """Replace every quantized layer by a float one holding its dequantized weight, in place."""
    for name, module in list(model.named_modules()):
        if name and isinstance(module, (QuantLinear, QuantConv2d)):
            _replace(model, name, module.to_float())
    return model


def bits_per_weight(model: nn.Module) -> float:
    """Stored bits per weight over the model's quantized layers: codes, cluster ids, scales and
    zeros (biases, float, not counted)."""
    stored = weights = 0
    for module in model.modules():
        if isinstance(module, (QuantLinear, QuantConv2d)):
            stored += sum(t.numel() * t.element_size() for t in module.weight_args()) * 8
            weights += module.out_features * module.in_features
    if weights == 0:
        raise ValueError("bits_per_weight: the model has no quantized layer")
    return stored / weights


def save_quantized(model: nn.Module, path: str) -> None:
    """The model's state (quantized layers' buffers, every other parameter and buffer) as one
    safetensors file; each quantized layer's settings go in the file's metadata."""
    from safetensors.torch import save_file

    layers = {name: {"type": type(m).__name__, **m.settings()} for name, m in model.named_modules()
              if isinstance(m, (QuantLinear, QuantConv2d))}  # fmt: skip
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, path, metadata={"prismkit_quant_layers": json.dumps(layers)})


def load_quantized(model: nn.Module, path: str) -> nn.Module:
    """Load ``save_quantized``'s file into ``model``, a float model of the same architecture: the
    layers the file lists become quantized layers of the saved settings, then every tensor is
    loaded (strictly). Returns ``model``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        layers = json.loads((f.metadata() or {}).get("prismkit_quant_layers", "{}"))
    for name, spec in layers.items():
        module = model.get_submodule(name)
        dtype = getattr(torch, spec["scale_dtype"])
        if spec["type"] == "QuantLinear":
            new = QuantLinear(module.in_features, module.out_features, module.bias is not None, bits=spec["bits"],
                              group_size=spec["group_size"], clusters=spec["clusters"], scale_dtype=dtype,
                              device=module.weight.device, dtype=module.weight.dtype)  # fmt: skip
        else:
            new = QuantConv2d(module, bits=spec["bits"], group_size=spec["group_size"], clusters=spec["clusters"],
                              scale_dtype=dtype)  # fmt: skip
        _replace(model, name, new)
    model.load_state_dict(load_file(path, device=str(next(model.buffers(), torch.empty(0)).device)))
    return model
