// The Gaussian splatting ops' schemas (a fragment of the prismkit library; see
// csrc/sae/sae_schemas.cpp for why each core has its own). CPU kernels: csrc/splat/*_cpu.cpp; CUDA
// kernels: cuda/splat/ with their glue in csrc/splat/*_cuda.cpp. Semantics, constants and
// conventions: the wrappers' docstrings in python/prismkit/ops/splat/__init__.py.
#include <torch/library.h>

// width, height and the tile grid are SymInt so torch.compile(dynamic=True) traces one graph for
// every image size; flatten_ids' length (the number of tile-Gaussian intersections) is data
// dependent and comes out of tile_bin as an unbacked size.
TORCH_LIBRARY_FRAGMENT(prismkit, m) {
  m.def(
      "project_gaussians(Tensor means, Tensor quats, Tensor scales, Tensor viewmats, Tensor Ks, SymInt width, "
      "SymInt height, float near_plane=0.01, float far_plane=1e10, float eps2d=0.3, float radius_clip=0.0) "
      "-> (Tensor means2d, Tensor conics, Tensor depths, Tensor radii)");
  m.def(
      "project_gaussians_backward(Tensor means, Tensor quats, Tensor scales, Tensor viewmats, Tensor Ks, "
      "SymInt width, SymInt height, float eps2d, Tensor radii, Tensor grad_means2d, Tensor grad_conics, "
      "Tensor grad_depths) -> (Tensor grad_means, Tensor grad_quats, Tensor grad_scales)");
  m.def(
      "tile_bin(Tensor means2d, Tensor radii, Tensor depths, int tile_size, SymInt tiles_x, SymInt tiles_y) "
      "-> (Tensor tile_offsets, Tensor flatten_ids)");
  m.def(
      "rasterize(Tensor means2d, Tensor conics, Tensor features, Tensor opacities, Tensor tile_offsets, "
      "Tensor flatten_ids, SymInt width, SymInt height, int tile_size, Tensor? backgrounds=None) "
      "-> (Tensor render, Tensor alpha, Tensor last_ids)");
  m.def(
      "rasterize_backward(Tensor means2d, Tensor conics, Tensor features, Tensor opacities, Tensor tile_offsets, "
      "Tensor flatten_ids, SymInt width, SymInt height, int tile_size, Tensor? backgrounds, Tensor alpha, "
      "Tensor last_ids, Tensor grad_render, Tensor grad_alpha) "
      "-> (Tensor grad_means2d, Tensor grad_conics, Tensor grad_features, Tensor grad_opacities, "
      "Tensor grad_backgrounds)");
  // Sparse coefficient splatting (LangSplatV2): each Gaussian carries P (index, weight) pairs
  // into a weight map of num_coefs entries (levels x L of a codebook [levels, L, D]).
  m.def(
      "rasterize_sparse_coef(Tensor means2d, Tensor conics, Tensor opacities, Tensor coef_indices, "
      "Tensor coef_weights, int num_coefs, Tensor tile_offsets, Tensor flatten_ids, SymInt width, SymInt height, "
      "int tile_size) -> (Tensor weight_map, Tensor alpha, Tensor last_ids)");
  m.def(
      "rasterize_sparse_coef_backward(Tensor means2d, Tensor conics, Tensor opacities, Tensor coef_indices, "
      "Tensor coef_weights, int num_coefs, Tensor tile_offsets, Tensor flatten_ids, SymInt width, SymInt height, "
      "int tile_size, Tensor alpha, Tensor last_ids, Tensor grad_weight_map, Tensor grad_alpha) "
      "-> (Tensor grad_means2d, Tensor grad_conics, Tensor grad_opacities, Tensor grad_coef_weights)");
  m.def(
      "rasterize_sparse_features(Tensor means2d, Tensor conics, Tensor opacities, Tensor coef_indices, "
      "Tensor coef_weights, Tensor codebook, Tensor tile_offsets, Tensor flatten_ids, SymInt width, SymInt height, "
      "int tile_size, bool normalize=False) -> Tensor");
  m.def(
      "language_relevancy(Tensor means2d, Tensor conics, Tensor opacities, Tensor coef_indices, "
      "Tensor coef_weights, Tensor codebook, Tensor queries, Tensor negatives, Tensor tile_offsets, "
      "Tensor flatten_ids, SymInt width, SymInt height, int tile_size) -> Tensor");
}
