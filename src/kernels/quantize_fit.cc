// Per-group scale searches of the K-quant encoders (ggml's make_qkx2_quants, make_qx_quants and
// make_q3_quants), scalar and 8-lane. The lane versions vectorize across independent groups (the
// sub-blocks of a super-block), never across the elements of one group, so every lane performs
// the scalar operations in the scalar order and the results are bit-identical. Compiled without
// FMA contraction. GCC/Clang vector extensions; an AVX2 clone is picked at load time where the CPU
// has it (the generic clone lowers the same code to SSE2).
#include <cmath>
#include <cstring>

#include "kernels/quantize_internal.h"

namespace enclave::kernels::quant_detail {

// Asymmetric fit x ~ scale * L + min (L in [0, nmax], min <= 0) minimizing a weighted error
// (absolute or squared): start from the min/max grid, then try nstep+1 slightly different grids,
// each followed by a weighted least-squares solve for (scale, min). Returns the scale and stores
// -min in *neg_min. `L` receives the chosen levels.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min,
                    float rmin, float rdelta, int nstep, bool abs_error) {
  uint8_t scratch[64];
  float mn = x[0];
  float mx = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < mn) mn = x[i];
    if (x[i] > mx) mx = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (mn > 0) mn = 0;
  if (mx == mn) {
    std::memset(L, 0, static_cast<size_t>(n));
    *neg_min = -mn;
    return 0.0f;
  }
  const float fmax = static_cast<float>(nmax);
  float iscale = fmax / (mx - mn);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clamp_int(nearest_int(iscale * (x[i] - mn)), 0, nmax));
    float diff = scale * static_cast<float>(L[i]) + mn - x[i];
    diff = abs_error ? std::fabs(diff) : diff * diff;
    best_error += w[i] * diff;
  }
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + fmax) / (mx - mn);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * (x[i] - mn)), 0, nmax);
      scratch[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(scratch[i]) + this_min - x[i];
        diff = abs_error ? std::fabs(diff) : diff * diff;
        error += w[i] * diff;
      }
      if (error < best_error) {
        std::memcpy(L, scratch, static_cast<size_t>(n));
        best_error = error;
        scale = this_scale;
        mn = this_min;
      }
    }
  }
  *neg_min = -mn;
  return scale;
}

// Symmetric fit x ~ scale * (L - nmax), L - nmax in [-nmax, nmax - 1], weights x^2: the grid
// through the largest-magnitude element, then 18 nearby grids, keeping the one with the best
// least-squares score sum(w x l)^2 / sum(w l^2). L receives l + nmax.
float fit_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    const float fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    sumlx = 0;
    suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const float fl = static_cast<float>(clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        L[i] = static_cast<int8_t>(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric 3-bit fit (levels -nmax..nmax-1, weights x^2) refined by coordinate descent: each
// element in turn moves to the level that is optimal given the others, if that improves the
// least-squares score. L receives l + nmax (or all zeros for an all-zero group).
float fit_q3(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, static_cast<size_t>(n));
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0) {
        float sl2 = suml2 - w * li * li;
        const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          const float fl = static_cast<float>(new_l);
          slx += w * x[i] * fl;
          sl2 += w * fl * fl;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ---- 8-lane versions ----

namespace {

typedef float V8f __attribute__((vector_size(32)));
typedef int32_t V8i __attribute__((vector_size(32)));

__attribute__((always_inline)) inline V8f splat(float v) {
  return V8f{v, v, v, v, v, v, v, v};
}
__attribute__((always_inline)) inline V8i splat_i(int v) {
  return V8i{v, v, v, v, v, v, v, v};
}
__attribute__((always_inline)) inline V8f select(V8i m, V8f a, V8f b) {
  return reinterpret_cast<V8f>((m & reinterpret_cast<V8i>(a)) | (~m & reinterpret_cast<V8i>(b)));
}
__attribute__((always_inline)) inline V8i select_i(V8i m, V8i a, V8i b) {
  return (m & a) | (~m & b);
}
__attribute__((always_inline)) inline V8f vabs(V8f v) {
  return reinterpret_cast<V8f>(reinterpret_cast<V8i>(v) & 0x7FFFFFFF);
}
__attribute__((always_inline)) inline V8f to_float(V8i v) {
  return __builtin_convertvector(v, V8f);
}
__attribute__((always_inline)) inline bool any(V8i m) {
  int r = 0;
  for (int k = 0; k < 8; ++k) r |= m[k];
  return r != 0;
}
// nearest_int() per lane.
__attribute__((always_inline)) inline V8i nearest(V8f v) {
  const V8f shifted = v + 12582912.0f;
  return (reinterpret_cast<V8i>(shifted) & 0x007FFFFF) - 0x00400000;
}
__attribute__((always_inline)) inline V8i clamp(V8i v, int lo, int hi) {
  v = select_i(v < lo, splat_i(lo), v);
  return select_i(v > hi, splat_i(hi), v);
}

// Transposes 8 groups of n floats (group g at src + g * n) into n lane vectors.
inline void transpose_in(const float* src, int n, V8f* dst) {
  for (int i = 0; i < n; ++i) {
    for (int g = 0; g < 8; ++g) dst[i][g] = src[g * n + i];
  }
}

constexpr int kMaxGroup = 32;

__attribute__((target_clones("avx2", "default"))) void fit_scale_min_lanes(
    int n, int nmax, const float* x_in, const float* w_in, uint8_t* L_out, float* scales,
    float* neg_mins, float rmin, float rdelta, int nstep, bool abs_error) {
  V8f x[kMaxGroup], w[kMaxGroup];
  transpose_in(x_in, n, x);
  transpose_in(w_in, n, w);
  V8f mn = x[0];
  V8f mx = x[0];
  V8f sum_w = w[0];
  V8f sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    mn = select(x[i] < mn, x[i], mn);
    mx = select(x[i] > mx, x[i], mx);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  mn = select(mn > 0.0f, splat(0.0f), mn);
  const V8i flat = mx == mn;  // these lanes end with scale 0, L 0 (their math below is ignored)
  const float fmax = static_cast<float>(nmax);
  V8f iscale = fmax / (mx - mn);
  V8f scale = 1.0f / iscale;
  V8f best_error = splat(0.0f);
  V8i L[kMaxGroup];
  for (int i = 0; i < n; ++i) {
    L[i] = clamp(nearest(iscale * (x[i] - mn)), 0, nmax);
    V8f diff = scale * to_float(L[i]) + mn - x[i];
    diff = abs_error ? vabs(diff) : diff * diff;
    best_error += w[i] * diff;
  }
  V8i aux[kMaxGroup];
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * static_cast<float>(step) + fmax) / (mx - mn);
    V8f sum_l = splat(0.0f), sum_l2 = splat(0.0f), sum_xl = splat(0.0f);
    for (int i = 0; i < n; ++i) {
      aux[i] = clamp(nearest(iscale * (x[i] - mn)), 0, nmax);
      const V8f fl = to_float(aux[i]);
      const V8f wl = w[i] * fl;
      sum_l += wl;
      sum_l2 += wl * fl;
      sum_xl += wl * x[i];
    }
    const V8f det = sum_w * sum_l2 - sum_l * sum_l;
    V8f this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    V8f this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    const V8i positive_min = this_min > 0.0f;
    this_min = select(positive_min, splat(0.0f), this_min);
    this_scale = select(positive_min, sum_xl / sum_l2, this_scale);
    V8f error = splat(0.0f);
    for (int i = 0; i < n; ++i) {
      V8f diff = this_scale * to_float(aux[i]) + this_min - x[i];
      diff = abs_error ? vabs(diff) : diff * diff;
      error += w[i] * diff;
    }
    const V8i better = (det > 0.0f) & (error < best_error) & ~flat;
    if (!any(better)) continue;
    for (int i = 0; i < n; ++i) L[i] = select_i(better, aux[i], L[i]);
    best_error = select(better, error, best_error);
    scale = select(better, this_scale, scale);
    mn = select(better, this_min, mn);
  }
  for (int g = 0; g < 8; ++g) {
    scales[g] = flat[g] ? 0.0f : scale[g];
    neg_mins[g] = -mn[g];
    for (int i = 0; i < n; ++i) L_out[g * n + i] = flat[g] ? 0 : static_cast<uint8_t>(L[i][g]);
  }
}

__attribute__((target_clones("avx2", "default"))) void fit_symmetric_lanes(int n, int nmax,
                                                                           const float* x_in,
                                                                           int8_t* L_out,
                                                                           float* scales) {
  V8f x[kMaxGroup];
  transpose_in(x_in, n, x);
  V8f amax = splat(0.0f);
  V8f max = splat(0.0f);
  for (int i = 0; i < n; ++i) {
    const V8f a = vabs(x[i]);
    const V8i bigger = a > amax;
    amax = select(bigger, a, amax);
    max = select(bigger, x[i], max);
  }
  const V8i zero = amax < kGroupMaxEps;  // all-zero groups: scale 0, L 0
  V8f iscale = static_cast<float>(-nmax) / max;
  V8f sumlx = splat(0.0f), suml2 = splat(0.0f);
  V8i L[kMaxGroup], aux[kMaxGroup];
  V8f xw[kMaxGroup];  // w * x with w = x * x
  for (int i = 0; i < n; ++i) {
    const V8i l = clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
    L[i] = l + nmax;
    const V8f w = x[i] * x[i];
    const V8f fl = to_float(l);
    xw[i] = w * x[i];
    sumlx += xw[i] * fl;
    suml2 += w * fl * fl;
  }
  V8f scale = select(suml2 != 0.0f, sumlx / suml2, splat(0.0f));
  V8f best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    sumlx = splat(0.0f);
    suml2 = splat(0.0f);
    for (int i = 0; i < n; ++i) {
      aux[i] = clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      const V8f fl = to_float(aux[i]);
      const V8f w = x[i] * x[i];
      sumlx += xw[i] * fl;
      suml2 += w * fl * fl;
    }
    const V8i better = (suml2 > 0.0f) & (sumlx * sumlx > best * suml2);
    if (!any(better)) continue;
    for (int i = 0; i < n; ++i) L[i] = select_i(better, aux[i] + nmax, L[i]);
    scale = select(better, sumlx / suml2, scale);
    best = select(better, scale * sumlx, best);
  }
  for (int g = 0; g < 8; ++g) {
    scales[g] = zero[g] ? 0.0f : scale[g];
    for (int i = 0; i < n; ++i) L_out[g * n + i] = zero[g] ? 0 : static_cast<int8_t>(L[i][g]);
  }
}

}  // namespace

void fit_scale_min_x8(int n, int nmax, const float* x, const float* w, uint8_t* L, float* scales,
                      float* neg_mins, float rmin, float rdelta, int nstep, bool abs_error) {
  fit_scale_min_lanes(n, nmax, x, w, L, scales, neg_mins, rmin, rdelta, nstep, abs_error);
}

void fit_symmetric_x8(int n, int nmax, const float* x, int8_t* L, float* scales) {
  fit_symmetric_lanes(n, nmax, x, L, scales);
}

}  // namespace enclave::kernels::quant_detail
