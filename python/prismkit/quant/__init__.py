"""SplitQuant (split quantization) on prismkit's quant ops.

* ``split(model, k=3)``: the paper's layer splitting, faithfully: each Linear / Conv2d becomes k
  copies whose weights (and biases) hold one k-means cluster each, zeros elsewhere, and whose
  outputs sum to the original layer's.
* ``weight_clusters`` / ``assign_clusters``: the clustering it uses (exact 1-D k-means,
  ``prismkit.ops.quant.kmeans1d``, in place of the official code's scikit-learn KMeans).
* ``quantize_weight`` / ``dequantize_weight``: one weight matrix to b-bit codes, cluster ids and
  per-(group, cluster) scales and zeros (min-max, or SplitQuant with the paper's or tight ranges),
  and back.
* ``quantize(model, bits, ...)``: ``nn.Linear`` / ``nn.Conv2d`` to ``QuantLinear`` /
  ``QuantConv2d`` (one packed weight each, ``quant_linear``); ``dequantize``, ``bits_per_weight``,
  ``save_quantized`` / ``load_quantized``.
"""

from .clusters import assign_clusters, cluster_rows, weight_clusters
from .modules import QuantConv2d, QuantLinear, bits_per_weight, dequantize, load_quantized, quantize, save_quantized
from .quantizers import (
    PackedWeight,
    QuantizedWeight,
    dequantize_weight,
    effective_group_size,
    pack_weight,
    quantize_weight,
)
from .split import SplitLayer, split

__all__ = [
    "assign_clusters",
    "cluster_rows",
    "weight_clusters",
    "SplitLayer",
    "split",
    "QuantizedWeight",
    "bits_per_weight",
    "QuantLinear",
    "QuantConv2d",
    "quantize",
    "dequantize",
    "save_quantized",
    "load_quantized",
    "dequantize_weight",
    "effective_group_size",
    "quantize_weight",
    "PackedWeight",
    "pack_weight",
]
