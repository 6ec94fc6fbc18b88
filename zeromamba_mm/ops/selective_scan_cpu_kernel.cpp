// Compiled CPU kernel of the selective scan's recurrence (d_state >= 1).
//
// Built at first use by zeromamba_mm/ops/selective_scan_cpu_build.py with
// torch.utils.cpp_extension; called by zeromamba_mm/ops/selective_scan_cpu.py
// (the gate z is applied by the dispatch). Per sequence row (batch b,
// channel d) and step t:
//
//   dt_t = softplus(delta_t + bias)   (or delta_t + bias),
//   a_t = exp(dt_t A_n),  h_t = a_t h_{t-1} + dt_t u_t B_{t,n},
//   y_t = sum_n C_{t,n} h_t + D u_t,
//
// sequential over t, the state n as the inner (vectorised) loop, rows in
// parallel over torch's intra-op threads (at::parallel_for, so
// torch.set_num_threads applies). B and C come as (batch, G, L, N) views
// with the state contiguous; channel d reads group d / (D / G).
//
// The backward recomputes one row's states and decays into a per-thread
// buffer of 2 (L + 1) N values, then runs the adjoint recurrence
//   lam_t = C_t g_t + a_{t+1} lam_{t+1}   (lam_{L-1} starts at glast)
// backwards in time. dB and dC sum over the channels of a group, so every
// thread partition (a range of channels) accumulates its own copy; dA sums
// over the batch inside one partition.
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef ZEROMAMBA_AVX2
// Only this file's kernels use AVX2/FMA (the build enables it when the
// CPU reports both); torch's headers above keep their own flags.
#pragma GCC target("avx2,fma")
#endif

namespace {

// exp2 for float32 without a library call, so that the loop over the state
// vectorises: round to the nearest integer k, 2^f for |f| <= 1/2 by a
// degree-6 polynomial (a Chebyshev fit: relative error 6e-9, below
// float32's rounding), times 2^k built from the exponent bits. The argument is
// clamped to [-126, 127]: a decay below 2^-126 (1e-38) is as good as 0 for
// the recurrence, and NaN propagates through the polynomial.
inline float exp2_fast(float x) {
  x = x < -126.0f ? -126.0f : x;
  x = x > 127.0f ? 127.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: rounds to an integer
  const float k = (x + shifter) - shifter;
  const float f = x - k;
  float p = 1.5465312520617985e-04f;
  p = p * f + 1.3395279800723324e-03f;
  p = p * f + 9.618039945003080e-03f;
  p = p * f + 5.5503406807439634e-02f;
  p = p * f + 2.4022651101321707e-01f;
  p = p * f + 6.931472000626804e-01f;
  p = p * f + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(k) + 127)
                        << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

constexpr float kLog2e = 1.4426950408889634f;

// The decay exp(dt A) from dt * (A log2 e) (float32) or dt * A (float64,
// the library's exp: tests compare it tightly with the reference).
inline float decay_of(float dt, float a, float a_log2e) {
  return exp2_fast(dt * a_log2e);
}
inline double decay_of(double dt, double a, double) { return std::exp(dt * a); }

// softplus(x) = max(x, 0) + log1p(e), e = exp(-|x|) in (0, 1], the formula
// of scan_common.softplus. In float32, log1p(e) = 2 atanh(s) with
// s = e / (2 + e) <= 1/3 (no rounding of 1 + e), by its odd series to
// s^15 (truncation below 2e-8 relative): vectorisable, no library call.
inline float softplus_of(float x) {
  const float e = exp2_fast(-std::fabs(x) * kLog2e);
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float p = 1.0f / 15;
  p = p * s2 + 1.0f / 13;
  p = p * s2 + 1.0f / 11;
  p = p * s2 + 1.0f / 9;
  p = p * s2 + 1.0f / 7;
  p = p * s2 + 1.0f / 5;
  p = p * s2 + 1.0f / 3;
  p = p * s2 + 1.0f;
  return (x > 0.0f ? x : 0.0f) + 2.0f * s * p;
}
inline double softplus_of(double x) {
  return (x > 0.0 ? x : 0.0) + std::log1p(std::exp(-std::fabs(x)));
}

// sigmoid(x), the derivative of the softplus, from e = exp(-|x|).
inline float sigmoid_of(float x) {
  const float e = exp2_fast(-std::fabs(x) * kLog2e);
  return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}
inline double sigmoid_of(double x) {
  const double e = std::exp(-std::fabs(x));
  return (x >= 0.0 ? 1.0 : e) / (1.0 + e);
}

// One row's step sizes dt (and, if slope != nullptr, sigmoid(delta + bias)).
template <typename T>
void step_sizes(int64_t L, const T* delta, T bias, bool softplus, T* dt,
                T* slope) {
  if (!softplus) {
    for (int64_t t = 0; t < L; ++t) dt[t] = delta[t] + bias;
    return;
  }
#pragma omp simd
  for (int64_t t = 0; t < L; ++t) dt[t] = softplus_of(delta[t] + bias);
  if (slope != nullptr) {
#pragma omp simd
    for (int64_t t = 0; t < L; ++t) slope[t] = sigmoid_of(delta[t] + bias);
  }
}

// Per-scan scalars and pointers shared by every row.
template <typename T>
struct Extras {
  const T* D;     // (D,) or nullptr
  const T* bias;  // (D,) or nullptr
  bool softplus;
  T skip(int64_t d) const { return D != nullptr ? D[d] : T(0); }
  T shift(int64_t d) const { return bias != nullptr ? bias[d] : T(0); }
};

// A (batch, G, L, N) view of B or C: element (b, g, t, n) at
// data[b * sb + g * sg + t * sl + n].
template <typename T>
struct StateView {
  const T* data;
  int64_t sb, sg, sl;
  const T* row(int64_t b, int64_t g) const { return data + b * sb + g * sg; }
};

template <typename T>
StateView<T> view_of(const at::Tensor& x) {
  return {x.data_ptr<T>(), x.stride(0), x.stride(1), x.stride(2)};
}

// One row's forward. NT > 0 fixes the state size at compile time (unrolled,
// in registers); NT == 0 reads it from n_dyn.
template <typename T, int NT>
void forward_row(int64_t L, int64_t n_dyn, const T* u, const T* dt,
                 const T* A, const T* A2, const T* Bp, int64_t sBl,
                 const T* Cp, int64_t sCl, T skip, T* y, T* last, T* h) {
  const int64_t N = NT > 0 ? NT : n_dyn;
  for (int64_t n = 0; n < N; ++n) h[n] = 0;
  for (int64_t t = 0; t < L; ++t) {
    const T dtv = dt[t];
    const T x = dtv * u[t];
    const T* Bt = Bp + t * sBl;
    const T* Ct = Cp + t * sCl;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t n = 0; n < N; ++n) {
      const T a = decay_of(dtv, A[n], A2[n]);
      h[n] = a * h[n] + x * Bt[n];
      acc += Ct[n] * h[n];
    }
    y[t] = acc + skip * u[t];
  }
  if (last != nullptr)
    for (int64_t n = 0; n < N; ++n) last[n] = h[n];
}

// One row's backward; dA (N), dB and dC ((L, N) with row stride N) are
// accumulated, du and ddt written. work holds 2 (L + 1) N + N values.
template <typename T, int NT>
void backward_row(int64_t L, int64_t n_dyn, const T* u, const T* dt,
                  const T* A, const T* A2, const T* Bp, int64_t sBl,
                  const T* Cp, int64_t sCl, T skip, const T* gy,
                  const T* glast, T* du, T* ddt, T* dA, T* dB, T* dC,
                  T* work) {
  const int64_t N = NT > 0 ? NT : n_dyn;
  // states[t + 1] = h_t (states[0] = h_{-1} = 0); decays[t] = a_t.
  T* states = work;
  T* decays = work + (L + 1) * N;
  T* lam = decays + L * N;
  for (int64_t n = 0; n < N; ++n) states[n] = 0;
  for (int64_t t = 0; t < L; ++t) {
    const T dtv = dt[t];
    const T x = dtv * u[t];
    const T* Bt = Bp + t * sBl;
    const T* hp = states + t * N;
    T* h = states + (t + 1) * N;
    T* a = decays + t * N;
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) {
      a[n] = decay_of(dtv, A[n], A2[n]);
      h[n] = a[n] * hp[n] + x * Bt[n];
    }
  }
  for (int64_t n = 0; n < N; ++n) lam[n] = glast != nullptr ? glast[n] : 0;
  for (int64_t t = L - 1; t >= 0; --t) {
    const T g = gy[t];
    const T dtv = dt[t];
    const T uv = u[t];
    const T x = dtv * uv;
    const T* Bt = Bp + t * sBl;
    const T* Ct = Cp + t * sCl;
    const T* h = states + (t + 1) * N;
    const T* hp = states + t * N;
    const T* a = decays + t * N;
    T* dBt = dB != nullptr ? dB + t * N : nullptr;
    T* dCt = dC != nullptr ? dC + t * N : nullptr;
    T s = 0, dd = 0;
#pragma omp simd reduction(+ : s, dd)
    for (int64_t n = 0; n < N; ++n) {
      const T l = lam[n] + Ct[n] * g;  // lam_t
      const T lq = l * a[n] * hp[n];   // lam_t a_t h_{t-1}
      s += l * Bt[n];
      dd += A[n] * lq;
      dA[n] += dtv * lq;
      lam[n] = a[n] * l;               // a_t lam_t, for step t - 1
      if (dBt != nullptr) dBt[n] += l * x;
      if (dCt != nullptr) dCt[n] += g * h[n];
    }
    du[t] = dtv * s + skip * g;
    ddt[t] = dd + uv * s;
  }
}

template <typename T>
using ForwardRow = void (*)(int64_t, int64_t, const T*, const T*, const T*,
                            const T*, const T*, int64_t, const T*, int64_t, T,
                            T*, T*, T*);
template <typename T>
using BackwardRow = void (*)(int64_t, int64_t, const T*, const T*, const T*,
                             const T*, const T*, int64_t, const T*, int64_t,
                             T, const T*, const T*, T*, T*, T*, T*, T*, T*);

// The row kernels specialised for the state sizes of VMamba (1), the
// small Vim configs (4, 8) and Vim / GlobalMamba / V2M (16).
template <typename T>
ForwardRow<T> forward_kernel(int64_t N) {
  switch (N) {
    case 1: return forward_row<T, 1>;
    case 4: return forward_row<T, 4>;
    case 8: return forward_row<T, 8>;
    case 16: return forward_row<T, 16>;
    default: return forward_row<T, 0>;
  }
}
template <typename T>
BackwardRow<T> backward_kernel(int64_t N) {
  switch (N) {
    case 1: return backward_row<T, 1>;
    case 4: return backward_row<T, 4>;
    case 8: return backward_row<T, 8>;
    case 16: return backward_row<T, 16>;
    default: return backward_row<T, 0>;
  }
}

// Rows per parallel task: enough steps x states to amortise a task.
int64_t grain_rows(int64_t L, int64_t N) {
  const int64_t per_row = std::max<int64_t>(1, L * N);
  return std::max<int64_t>(1, (1 << 15) / per_row);
}

template <typename T>
const T* ptr_or_null(const at::Tensor& x) {
  return x.defined() ? x.data_ptr<T>() : nullptr;
}

template <typename T>
void forward_impl(const at::Tensor& u, const at::Tensor& delta,
                  const at::Tensor& A, const at::Tensor& Bv,
                  const at::Tensor& Cv, const Extras<T>& ex, at::Tensor& y,
                  at::Tensor& last, bool want_last) {
  const int64_t batch = u.size(0), D = u.size(1), L = u.size(2);
  const int64_t N = A.size(1), per_group = D / Bv.size(1);
  const at::Tensor A2 = (A * static_cast<double>(kLog2e)).contiguous();
  const T *pu = u.data_ptr<T>(), *pdelta = delta.data_ptr<T>();
  const T *pA = A.data_ptr<T>(), *pA2 = A2.data_ptr<T>();
  const StateView<T> Bs = view_of<T>(Bv), Cs = view_of<T>(Cv);
  T* py = y.data_ptr<T>();
  T* plast = want_last ? last.data_ptr<T>() : nullptr;
  const ForwardRow<T> kernel = forward_kernel<T>(N);
  at::parallel_for(0, batch * D, grain_rows(L, N), [&](int64_t lo,
                                                        int64_t hi) {
    std::vector<T> h(N), dt(L);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / D, d = r % D, g = d / per_group;
      step_sizes<T>(L, pdelta + r * L, ex.shift(d), ex.softplus, dt.data(),
                    nullptr);
      kernel(L, N, pu + r * L, dt.data(), pA + d * N, pA2 + d * N,
             Bs.row(b, g), Bs.sl, Cs.row(b, g), Cs.sl, ex.skip(d), py + r * L,
             plast != nullptr ? plast + r * N : nullptr, h.data());
    }
  });
}

template <typename T>
void backward_impl(const at::Tensor& u, const at::Tensor& delta,
                   const at::Tensor& A, const at::Tensor& Bv,
                   const at::Tensor& Cv, const Extras<T>& ex,
                   const at::Tensor& gy, const at::Tensor& glast,
                   std::vector<at::Tensor>& out) {
  const int64_t batch = u.size(0), D = u.size(1), L = u.size(2);
  const int64_t N = A.size(1), G = Bv.size(1), per_group = D / G;
  at::Tensor &du = out[0], &ddelta = out[1], &dA = out[2], &dB = out[3],
             &dC = out[4], &dD = out[5], &dbias = out[6];
  const at::Tensor A2 = (A * static_cast<double>(kLog2e)).contiguous();
  const T *pu = u.data_ptr<T>(), *pdelta = delta.data_ptr<T>();
  const T *pA = A.data_ptr<T>(), *pA2 = A2.data_ptr<T>();
  const T* pg = gy.data_ptr<T>();
  const T* pgl = ptr_or_null<T>(glast);
  const StateView<T> Bs = view_of<T>(Bv), Cs = view_of<T>(Cv);
  T *pdu = du.data_ptr<T>(), *pdd = ddelta.data_ptr<T>();
  T *pdA = dA.data_ptr<T>(), *pdD = dD.data_ptr<T>();
  T* pdbias = dbias.data_ptr<T>();
  T* pdB = dB.defined() ? dB.data_ptr<T>() : nullptr;
  T* pdC = dC.defined() ? dC.data_ptr<T>() : nullptr;
  const bool partial = pdB != nullptr || pdC != nullptr;
  const int64_t part_stride = batch * G * L * N;  // of dB / dC
  const BackwardRow<T> kernel = backward_kernel<T>(N);
  // With one partial dB/dC per partition, partition p owns channels
  // [p D / parts, (p + 1) D / parts): no two threads write one value.
  const int64_t n_parts = partial ? (pdB != nullptr ? dB : dC).size(0) : D;
  at::parallel_for(0, n_parts, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> work(2 * (L + 1) * N + N), dt(L), slope(L);
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t d0 = p * D / n_parts, d1 = (p + 1) * D / n_parts;
      const int64_t part = partial ? p : 0;
      for (int64_t d = d0; d < d1; ++d) {
        const int64_t g = d / per_group;
        T sum_dbias = 0, sum_dD = 0;
        for (int64_t b = 0; b < batch; ++b) {
          const int64_t r = b * D + d;
          const int64_t off = part * part_stride + (b * G + g) * L * N;
          step_sizes<T>(L, pdelta + r * L, ex.shift(d), ex.softplus,
                        dt.data(), slope.data());
          T* dd = pdd + r * L;
          kernel(L, N, pu + r * L, dt.data(), pA + d * N, pA2 + d * N,
                 Bs.row(b, g), Bs.sl, Cs.row(b, g), Cs.sl, ex.skip(d),
                 pg + r * L, pgl != nullptr ? pgl + r * N : nullptr,
                 pdu + r * L, dd, pdA + d * N,
                 pdB != nullptr ? pdB + off : nullptr,
                 pdC != nullptr ? pdC + off : nullptr, work.data());
          const T* gr = pg + r * L;
          const T* ur = pu + r * L;
          for (int64_t t = 0; t < L; ++t) {
            if (ex.softplus) dd[t] *= slope[t];
            sum_dbias += dd[t];
            sum_dD += gr[t] * ur[t];
          }
        }
        pdbias[d] = sum_dbias;
        pdD[d] = sum_dD;
      }
    }
  });
}

at::Tensor optional_cpu(const c10::optional<at::Tensor>& x) {
  return x.has_value() ? x->contiguous() : at::Tensor();
}

}  // namespace

// y (batch, D, L) with the skip D u and, if want_last, the last state
// (batch, D, N). D and delta_bias are (D,) or None.
std::vector<at::Tensor> scan_forward(at::Tensor u, at::Tensor delta,
                                     at::Tensor A, at::Tensor Bv,
                                     at::Tensor Cv,
                                     c10::optional<at::Tensor> D,
                                     c10::optional<at::Tensor> delta_bias,
                                     bool softplus, bool want_last) {
  at::Tensor y = at::empty_like(u);
  at::Tensor last = want_last
                        ? at::empty({u.size(0), u.size(1), A.size(1)},
                                    u.options())
                        : at::Tensor();
  const at::Tensor skip = optional_cpu(D), bias = optional_cpu(delta_bias);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_forward", [&] {
    const Extras<scalar_t> ex{ptr_or_null<scalar_t>(skip),
                              ptr_or_null<scalar_t>(bias), softplus};
    forward_impl<scalar_t>(u, delta, A, Bv, Cv, ex, y, last, want_last);
  });
  if (!want_last) return {y};
  return {y, last};
}

// du, ddelta (batch, D, L), dA (D, N), dB / dC as `parts` partial sums
// (parts, batch, G, L, N) (undefined unless asked for), dD and
// d delta_bias (D,) (computed whether or not the scan has them).
std::vector<at::Tensor> scan_backward(at::Tensor u, at::Tensor delta,
                                      at::Tensor A, at::Tensor Bv,
                                      at::Tensor Cv,
                                      c10::optional<at::Tensor> D,
                                      c10::optional<at::Tensor> delta_bias,
                                      bool softplus, at::Tensor gy,
                                      c10::optional<at::Tensor> glast,
                                      int64_t parts, bool need_dB,
                                      bool need_dC) {
  const int64_t batch = u.size(0), G = Bv.size(1), L = u.size(2);
  const int64_t N = A.size(1), channels = u.size(1);
  std::vector<at::Tensor> out = {
      at::empty_like(u),
      at::empty_like(u),
      at::zeros_like(A),
      need_dB ? at::zeros({parts, batch, G, L, N}, u.options())
              : at::Tensor(),
      need_dC ? at::zeros({parts, batch, G, L, N}, u.options())
              : at::Tensor(),
      at::empty({channels}, u.options()),
      at::empty({channels}, u.options())};
  const at::Tensor skip = optional_cpu(D), bias = optional_cpu(delta_bias);
  const at::Tensor gl = optional_cpu(glast);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_backward", [&] {
    const Extras<scalar_t> ex{ptr_or_null<scalar_t>(skip),
                              ptr_or_null<scalar_t>(bias), softplus};
    backward_impl<scalar_t>(u, delta, A, Bv, Cv, ex, gy, gl, out);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_forward", &scan_forward, "selective scan forward (CPU)");
  m.def("scan_backward", &scan_backward, "selective scan backward (CPU)");
}
