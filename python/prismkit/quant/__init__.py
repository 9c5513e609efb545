"""SplitQuant (split quantization) on prismkit's quant ops.

* ``split(model, k=3)``: the paper's layer splitting, faithfully: each Linear / Conv2d becomes k
  copies whose weights (and biases) hold one k-means cluster each, zeros elsewhere, and whose
  outputs sum to the original layer's.
* ``weight_clusters`` / ``assign_clusters``: the clustering it uses (exact 1-D k-means,
  ``prismkit.ops.quant.kmeans1d``, in place of the official code's scikit-learn KMeans).
* ``quantize_weight`` / ``dequantize_weight``: one weight matrix to b-bit codes, cluster ids and
  per-(group, cluster) scales and zeros (min-max, or SplitQuant with the paper's or tight ranges),
  and back; ``bits_per_weight`` counts the packed bytes.
"""

from .clusters import assign_clusters, cluster_rows, weight_clusters
from .quantizers import (
    PackedWeight,
    QuantizedWeight,
    bits_per_weight,
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
    "dequantize_weight",
    "effective_group_size",
    "quantize_weight",
    "PackedWeight",
    "pack_weight",
]
