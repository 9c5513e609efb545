"""SplitQuant (split quantization) on prismkit's quant ops.

* ``split(model, k=3)``: the paper's layer splitting, faithfully: each Linear / Conv2d becomes k
  copies whose weights (and biases) hold one k-means cluster each, zeros elsewhere, and whose
  outputs sum to the original layer's.
* ``weight_clusters`` / ``assign_clusters``: the clustering it uses (exact 1-D k-means,
  ``prismkit.ops.quant.kmeans1d``, in place of the official code's scikit-learn KMeans).
"""

from .clusters import assign_clusters, cluster_rows, weight_clusters
from .split import SplitLayer, split

__all__ = ["assign_clusters", "cluster_rows", "weight_clusters", "SplitLayer", "split"]
