// prismkit::quant_linear's hot loops for one instruction set (see common/isa_config.h).
//
// A chunk of L weights (L = floats per vector) is decoded in registers: the chunk's packed code
// bits (and cluster-id bits) are broadcast to every lane and shifted by the lane's offset, giving
// the code q and the cluster c per lane. 2-bit codes with clusters then look up the group's
// 16-entry table T[c * 4 + q] = q * s_c + z_c with one variable permute on AVX-512; otherwise each
// lane's scale and zero are selected by c from the group's four and multiplied-added.
// Batch 1 multiplies the chunk with x at once (one pass over the packed bytes, nothing stored);
// larger batches store rows of dequantized weights for dot_rows, which reuses each x load for four
// rows. A group size that is not a multiple of L (or of 16: the chunks must start on whole bytes
// of every field) takes the scalar loop.
#include "common/isa_config.h"
#include "quant/quant_linear_kernels.h"

#include <cstring>

namespace prismkit::quant {
namespace {

using isa::kLanes;
using isa::load;
using isa::VecF;

constexpr int L = static_cast<int>(kLanes<float>);
typedef int32_t VecI __attribute__((vector_size(isa::kVectorBytes)));
typedef uint32_t VecU __attribute__((vector_size(isa::kVectorBytes)));

// Per lane l: the 32-bit word of the chunk that holds field l, and the shift that brings the field
// down (tables computed at compile time, loaded as vectors).
template <int BITS>
struct LaneTables {
  uint32_t word[L];
  uint32_t shift[L];
};
template <int BITS>
constexpr LaneTables<BITS> lane_tables() {
  LaneTables<BITS> t{};
  for (int l = 0; l < L; ++l) {
    t.word[l] = static_cast<uint32_t>(l / (32 / BITS));
    t.shift[l] = static_cast<uint32_t>((l % (32 / BITS)) * BITS);
  }
  return t;
}
template <int BITS>
constexpr LaneTables<BITS> kLaneTables = lane_tables<BITS>();

template <int BITS>
PRISMKIT_INLINE VecU word_of_lane() {
  VecU v;
  std::memcpy(&v, kLaneTables<BITS>.word, sizeof(v));
  return v;
}
template <int BITS>
PRISMKIT_INLINE VecU shift_of_lane() {
  VecU v;
  std::memcpy(&v, kLaneTables<BITS>.shift, sizeof(v));
  return v;
}

typedef uint64_t VecU64 __attribute__((vector_size(isa::kVectorBytes)));
typedef uint32_t Words4 __attribute__((vector_size(16), aligned(1), may_alias));  // 16 bytes, any address

// The L fields of `bits` bits that start at byte `p`, one per lane (lane l = field l), built in
// registers: the chunk's bytes are read as one scalar (up to 8 bytes) and broadcast, or as a vector
// of words placed in the low lanes; a permute moves each lane's word in, a variable shift and a
// mask bring its field down. (Not through a stack buffer: a narrow store read back as a whole
// vector stalls on store forwarding at every chunk.)
template <int BITS>
PRISMKIT_INLINE VecU fields(const uint8_t* p) {
  constexpr int bytes = L * BITS / 8;
  constexpr uint32_t mask = (1u << BITS) - 1;
  if constexpr (bytes > 8) {  // 8-bit fields on the 16-lane path: the chunk's four words in the low lanes
    static_assert(bytes == 16, "more than 8 bytes: 16 lanes of 8-bit fields");
    const Words4 w = *reinterpret_cast<const Words4*>(p);
    VecU v = {};
    for (int i = 0; i < 4; ++i) v[i] = w[i];
    return (__builtin_shuffle(v, word_of_lane<BITS>()) >> shift_of_lane<BITS>()) & mask;
  } else if constexpr (bytes <= 4) {
    uint32_t word = 0;
    std::memcpy(&word, p, bytes);
    const VecU v = VecU{} + word;
    return (v >> shift_of_lane<BITS>()) & mask;
  } else {
    static_assert(bytes == 8, "a chunk spans 1, 2, 4, 8 or more than 8 bytes");
    uint64_t pair = 0;
    std::memcpy(&pair, p, 8);
    const VecU v = reinterpret_cast<VecU>(VecU64{} + pair);  // lanes: low word, high word, low, ...
    return (__builtin_shuffle(v, word_of_lane<BITS>()) >> shift_of_lane<BITS>()) & mask;
  }
}

// Per lane, table[idx] for a 16-entry table (idx < 16): one permute of a 16-lane register.
PRISMKIT_INLINE VecF lookup16(const float* table, VecI idx) {
  if constexpr (L == 16) {
    return __builtin_shuffle(load(table), idx);
  } else {  // not used with fewer lanes (kTableLookup); kept correct for any width
    VecF w;
    for (int l = 0; l < L; ++l) w[l] = table[idx[l] & 15];
    return w;
  }
}

// 2-bit codes with clusters read a 16-entry table where one permute does it (16 lanes: AVX-512);
// with fewer lanes a table lookup takes two permutes and a blend, and the per-lane select of the
// scale and zero (two permutes and a multiply-add) measured faster on AVX2.
template <int BITS, bool IDS>
constexpr bool kTableLookup = BITS == 2 && IDS && L == 16;

struct Group {
  float table[16];  // 2-bit codes with clusters: q * s_c + z_c at c * 4 + q
  float s[4], z[4];
  VecF s_lanes, z_lanes;  // s[0..3] and z[0..3] in the first lanes, for the per-lane select by cluster
};

// Entry i of a row's scales or zeros stored as float32, float16 or bfloat16 (the high half of a
// float).
PRISMKIT_INLINE float meta_value(const void* p, int64_t i, MetaType type) {
  if (type == MetaType::Float32) return static_cast<const float*>(p)[i];
  const uint16_t bits = static_cast<const uint16_t*>(p)[i];
  if (type == MetaType::BFloat16) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &wide, sizeof(f));
    return f;
  }
  // float16, converted by hand (every path and compiler; a few values per group of 128 weights)
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  const uint32_t wide = exponent == 0x1fu ? sign | 0x7f800000u | (mantissa << 13)                 // inf, NaN
                                          : sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
  float f;
  std::memcpy(&f, &wide, sizeof(f));
  return f;
}

template <int BITS, bool IDS>
PRISMKIT_INLINE void prepare(const void* scales, const void* zeros, MetaType type, int64_t at, int clusters, Group& g) {
  for (int c = 0; c < 4; ++c) {
    const int cc = c < clusters ? c : clusters - 1;  // ids at or above the count read as the last cluster
    g.s[c] = meta_value(scales, at + cc, type);
    g.z[c] = meta_value(zeros, at + cc, type);
  }
  if constexpr (kTableLookup<BITS, IDS>) {
    for (int c = 0; c < 4; ++c)
      for (int q = 0; q < 4; ++q) g.table[c * 4 + q] = static_cast<float>(q) * g.s[c] + g.z[c];
  } else if constexpr (IDS) {
    g.s_lanes = VecF{};
    g.z_lanes = VecF{};
    for (int c = 0; c < 4 && c < L; ++c) {
      g.s_lanes[c] = g.s[c];
      g.z_lanes[c] = g.z[c];
    }
  }
}

// The L dequantized weights of the chunk at k (k a multiple of 16, so not negative: byte offsets by
// shifts, without the sign fix-ups a signed division costs).
template <int BITS, bool IDS>
PRISMKIT_INLINE VecF chunk(const uint8_t* codes, const uint8_t* ids, const Group& g, int64_t k) {
  const VecI q = reinterpret_cast<VecI>(fields<BITS>(codes + (static_cast<uint64_t>(k) * BITS >> 3)));
  if constexpr (!IDS) {
    return __builtin_convertvector(q, VecF) * g.s[0] + g.z[0];
  } else {
    const VecI c = reinterpret_cast<VecI>(fields<2>(ids + (static_cast<uint64_t>(k) >> 2)));
    if constexpr (kTableLookup<BITS, IDS>) return lookup16(g.table, (c << 2) | q);
    // per lane, the scale and zero of its cluster (c < 4 <= L: a permute of the first lanes)
    return __builtin_convertvector(q, VecF) * __builtin_shuffle(g.s_lanes, c) + __builtin_shuffle(g.z_lanes, c);
  }
}

PRISMKIT_INLINE float scalar_weight(const uint8_t* codes, const uint8_t* ids, const Group& g, int bits, int64_t k) {
  const int per = 8 / bits;
  const uint32_t q = (codes[k / per] >> ((k % per) * bits)) & ((1u << bits) - 1);
  const uint32_t c = ids ? (ids[k >> 2] >> ((k & 3) * 2)) & 3u : 0;
  return static_cast<float>(q) * g.s[c] + g.z[c];
}

// Dequantize the row into w (w != nullptr), or return its dot product with x (w == nullptr).
template <int BITS, bool IDS>
float row(const uint8_t* codes, const uint8_t* ids, const void* scales, const void* zeros, MetaType type, int64_t K,
          int64_t group_size, int clusters, const float* x, float* w) {
  const int64_t groups = K / group_size;
  const bool vector = group_size % L == 0 && group_size % 16 == 0;
  VecF acc = {}, acc2 = {};  // two chains of multiply-adds, so consecutive chunks overlap
  float tail = 0;
  Group g;
  for (int64_t gi = 0; gi < groups; ++gi) {
    prepare<BITS, IDS>(scales, zeros, type, gi * clusters, clusters, g);
    const int64_t k0 = gi * group_size, k1 = k0 + group_size;
    if (vector) {
      int64_t k = k0;
      for (; k + 2 * L <= k1; k += 2 * L) {
        const VecF v = chunk<BITS, IDS>(codes, ids, g, k), v2 = chunk<BITS, IDS>(codes, ids, g, k + L);
        if (w) {
          isa::store(w + k, v);
          isa::store(w + k + L, v2);
        } else {
          acc += v * load(x + k);
          acc2 += v2 * load(x + k + L);
        }
      }
      for (; k < k1; k += L) {
        const VecF v = chunk<BITS, IDS>(codes, ids, g, k);
        if (w)
          isa::store(w + k, v);
        else
          acc += v * load(x + k);
      }
    } else {
      for (int64_t k = k0; k < k1; ++k) {
        const float v = scalar_weight(codes, IDS ? ids : nullptr, g, BITS, k);
        if (w)
          w[k] = v;
        else
          tail += v * x[k];
      }
    }
  }
  acc += acc2;
  for (int l = 0; l < L; ++l) tail += acc[l];
  return tail;
}

template <bool IDS>
float row_bits(const uint8_t* codes, const uint8_t* ids, const void* scales, const void* zeros, MetaType type,
               int64_t K, int bits, int64_t group_size, int clusters, const float* x, float* w) {
  switch (bits) {
    case 2: return row<2, IDS>(codes, ids, scales, zeros, type, K, group_size, clusters, x, w);
    case 4: return row<4, IDS>(codes, ids, scales, zeros, type, K, group_size, clusters, x, w);
    default: return row<8, IDS>(codes, ids, scales, zeros, type, K, group_size, clusters, x, w);
  }
}

void dequantize_row(const uint8_t* codes, const uint8_t* ids, const void* scales, const void* zeros, MetaType type,
                    int64_t K, int bits, int64_t group_size, int clusters, float* w) {
  if (ids)
    row_bits<true>(codes, ids, scales, zeros, type, K, bits, group_size, clusters, nullptr, w);
  else
    row_bits<false>(codes, nullptr, scales, zeros, type, K, bits, group_size, 1, nullptr, w);
}

float dot_row(const uint8_t* codes, const uint8_t* ids, const void* scales, const void* zeros, MetaType type, int64_t K,
              int bits, int64_t group_size, int clusters, const float* x) {
  if (ids) return row_bits<true>(codes, ids, scales, zeros, type, K, bits, group_size, clusters, x, nullptr);
  return row_bits<false>(codes, nullptr, scales, zeros, type, K, bits, group_size, 1, x, nullptr);
}

// R rows at once: each x element is loaded once for the R products; a vector of partial sums
// per row.
template <int R>
PRISMKIT_INLINE void dot_block(const float* __restrict x, const float* __restrict w, int64_t K, float* out) {
  VecF acc[R] = {};
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    const VecF xv = load(x + k);
    for (int r = 0; r < R; ++r) acc[r] += xv * load(w + r * K + k);
  }
  for (int r = 0; r < R; ++r) {
    float s = 0;
    for (int64_t kk = k; kk < K; ++kk) s += x[kk] * w[r * K + kk];
    for (int l = 0; l < L; ++l) s += acc[r][l];
    out[r] = s;
  }
}

void dot_rows(const float* x, int64_t ldx, int64_t B, const float* w, int64_t R, int64_t K, float* y, int64_t ldy) {
  for (int64_t b = 0; b < B; ++b) {
    float out[4];
    const float* xb = x + b * ldx;
    switch (R) {
      case 4: dot_block<4>(xb, w, K, out); break;
      case 3: dot_block<3>(xb, w, K, out); break;
      case 2: dot_block<2>(xb, w, K, out); break;
      default: dot_block<1>(xb, w, K, out); break;
    }
    for (int64_t r = 0; r < R; ++r) y[b * ldy + r] = out[r];
  }
}

constexpr QuantLinearKernels kTable{&dequantize_row, &dot_row, &dot_rows};

}  // namespace

const QuantLinearKernels& PRISMKIT_ISA_TABLE(quant_linear_kernels)() { return kTable; }

}  // namespace prismkit::quant
