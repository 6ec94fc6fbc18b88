// Compiled CPU kernel of the selective scan's recurrence (d_state >= 1).
//
// Built at first use by zeromamba_mm/ops/selective_scan_cpu_build.py with
// torch.utils.cpp_extension; called by zeromamba_mm/ops/selective_scan_cpu.py,
// which does the elementwise parts (softplus of delta, D skip, gate) with
// torch ops. Per sequence row (batch b, channel d) and step t:
//
//   a_t = exp(dt_t A_n),  h_t = a_t h_{t-1} + dt_t u_t B_{t,n},
//   y_t = sum_n C_{t,n} h_t,
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
// vectorises: round to the nearest integer k, 2^f for |f| <= 1/2 by its
// degree-7 Taylor polynomial (truncation error 5e-9, below float32's
// rounding), times 2^k built from the exponent bits. The argument is
// clamped to [-126, 127]: a decay below 2^-126 (1e-38) is as good as 0 for
// the recurrence, and NaN propagates through the polynomial.
inline float exp2_fast(float x) {
  x = x < -126.0f ? -126.0f : x;
  x = x > 127.0f ? 127.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: rounds to an integer
  const float k = (x + shifter) - shifter;
  const float f = x - k;
  float p = 1.525273380405984e-05f;
  p = p * f + 1.5403530393381606e-04f;
  p = p * f + 1.3333558146428443e-03f;
  p = p * f + 9.618129107628477e-03f;
  p = p * f + 5.550410866482158e-02f;
  p = p * f + 2.402265069591007e-01f;
  p = p * f + 6.931471805599453e-01f;
  p = p * f + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(k) + 127)
                        << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// The decay exp(dt A) from dt * (A log2 e) (float32) or dt * A (float64,
// the library's exp: tests compare it tightly with the reference).
inline float decay_of(float dt, float a, float a_log2e) {
  return exp2_fast(dt * a_log2e);
}
inline double decay_of(double dt, double a, double) { return std::exp(dt * a); }

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
                 const T* Cp, int64_t sCl, T* y, T* last, T* h) {
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
    y[t] = acc;
  }
  if (last != nullptr)
    for (int64_t n = 0; n < N; ++n) last[n] = h[n];
}

// One row's backward; dA (N), dB and dC ((L, N) with row stride N) are
// accumulated, du and ddt written. work holds 2 (L + 1) N + N values.
template <typename T, int NT>
void backward_row(int64_t L, int64_t n_dyn, const T* u, const T* dt,
                  const T* A, const T* A2, const T* Bp, int64_t sBl,
                  const T* Cp, int64_t sCl, const T* gy, const T* glast,
                  T* du, T* ddt, T* dA, T* dB, T* dC, T* work) {
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
    du[t] = dtv * s;
    ddt[t] = dd + uv * s;
  }
}

template <typename T>
using ForwardRow = void (*)(int64_t, int64_t, const T*, const T*, const T*,
                            const T*, const T*, int64_t, const T*, int64_t,
                            T*, T*, T*);
template <typename T>
using BackwardRow = void (*)(int64_t, int64_t, const T*, const T*, const T*,
                             const T*, const T*, int64_t, const T*, int64_t,
                             const T*, const T*, T*, T*, T*, T*, T*, T*);

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
at::Tensor log2e_scaled(const at::Tensor& A) {
  return A * (1.0 / std::log(2.0));
}

template <typename T>
void forward_impl(const at::Tensor& u, const at::Tensor& dt,
                  const at::Tensor& A, const at::Tensor& Bv,
                  const at::Tensor& Cv, at::Tensor& y, at::Tensor& last,
                  bool want_last) {
  const int64_t batch = u.size(0), D = u.size(1), L = u.size(2);
  const int64_t N = A.size(1), per_group = D / Bv.size(1);
  const at::Tensor A2 = log2e_scaled<T>(A).contiguous();
  const T *pu = u.data_ptr<T>(), *pdt = dt.data_ptr<T>();
  const T *pA = A.data_ptr<T>(), *pA2 = A2.data_ptr<T>();
  const StateView<T> Bs = view_of<T>(Bv), Cs = view_of<T>(Cv);
  T* py = y.data_ptr<T>();
  T* plast = want_last ? last.data_ptr<T>() : nullptr;
  const ForwardRow<T> kernel = forward_kernel<T>(N);
  at::parallel_for(0, batch * D, grain_rows(L, N), [&](int64_t lo,
                                                        int64_t hi) {
    std::vector<T> h(N);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / D, d = r % D, g = d / per_group;
      kernel(L, N, pu + r * L, pdt + r * L, pA + d * N, pA2 + d * N,
             Bs.row(b, g), Bs.sl, Cs.row(b, g), Cs.sl, py + r * L,
             plast != nullptr ? plast + r * N : nullptr, h.data());
    }
  });
}

template <typename T>
void backward_impl(const at::Tensor& u, const at::Tensor& dt,
                   const at::Tensor& A, const at::Tensor& Bv,
                   const at::Tensor& Cv, const at::Tensor& gy,
                   const at::Tensor& glast, at::Tensor& du, at::Tensor& ddt,
                   at::Tensor& dA, at::Tensor& dB, at::Tensor& dC) {
  const int64_t batch = u.size(0), D = u.size(1), L = u.size(2);
  const int64_t N = A.size(1), G = Bv.size(1), per_group = D / G;
  const int64_t parts = dB.defined() ? dB.size(0) : dC.defined() ? dC.size(0)
                                                                 : 1;
  const at::Tensor A2 = log2e_scaled<T>(A).contiguous();
  const T *pu = u.data_ptr<T>(), *pdt = dt.data_ptr<T>();
  const T *pA = A.data_ptr<T>(), *pA2 = A2.data_ptr<T>();
  const T* pg = gy.data_ptr<T>();
  const T* pgl = glast.defined() ? glast.data_ptr<T>() : nullptr;
  const StateView<T> Bs = view_of<T>(Bv), Cs = view_of<T>(Cv);
  T *pdu = du.data_ptr<T>(), *pddt = ddt.data_ptr<T>();
  T* pdA = dA.data_ptr<T>();
  T* pdB = dB.defined() ? dB.data_ptr<T>() : nullptr;
  T* pdC = dC.defined() ? dC.data_ptr<T>() : nullptr;
  const int64_t part_stride = batch * G * L * N;  // of dB / dC
  const BackwardRow<T> kernel = backward_kernel<T>(N);
  // With one partial dB/dC per partition, partition p owns channels
  // [p D / parts, (p + 1) D / parts): no two threads write one value.
  const int64_t n_parts = (pdB != nullptr || pdC != nullptr) ? parts : D;
  at::parallel_for(0, n_parts, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> work(2 * (L + 1) * N + N);
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t d0 = p * D / n_parts, d1 = (p + 1) * D / n_parts;
      const int64_t part = (pdB != nullptr || pdC != nullptr) ? p : 0;
      for (int64_t d = d0; d < d1; ++d) {
        const int64_t g = d / per_group;
        for (int64_t b = 0; b < batch; ++b) {
          const int64_t r = b * D + d;
          const int64_t off = part * part_stride + (b * G + g) * L * N;
          kernel(L, N, pu + r * L, pdt + r * L, pA + d * N, pA2 + d * N,
                 Bs.row(b, g), Bs.sl, Cs.row(b, g), Cs.sl, pg + r * L,
                 pgl != nullptr ? pgl + r * N : nullptr, pdu + r * L,
                 pddt + r * L, pdA + d * N,
                 pdB != nullptr ? pdB + off : nullptr,
                 pdC != nullptr ? pdC + off : nullptr, work.data());
        }
      }
    }
  });
}

}  // namespace

// y (batch, D, L) and, if want_last, the last state (batch, D, N).
std::vector<at::Tensor> scan_forward(at::Tensor u, at::Tensor dt,
                                     at::Tensor A, at::Tensor Bv,
                                     at::Tensor Cv, bool want_last) {
  at::Tensor y = at::empty_like(u);
  at::Tensor last = want_last
                        ? at::empty({u.size(0), u.size(1), A.size(1)},
                                    u.options())
                        : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_forward", [&] {
    forward_impl<scalar_t>(u, dt, A, Bv, Cv, y, last, want_last);
  });
  if (!want_last) return {y};
  return {y, last};
}

// du, ddt (batch, D, L), dA (D, N), and dB / dC as `parts` partial sums
// (parts, batch, G, L, N) (undefined unless asked for).
std::vector<at::Tensor> scan_backward(at::Tensor u, at::Tensor dt,
                                      at::Tensor A, at::Tensor Bv,
                                      at::Tensor Cv, at::Tensor gy,
                                      c10::optional<at::Tensor> glast,
                                      int64_t parts, bool need_dB,
                                      bool need_dC) {
  const int64_t batch = u.size(0), G = Bv.size(1), L = u.size(2);
  const int64_t N = A.size(1);
  at::Tensor du = at::empty_like(u), ddt = at::empty_like(u);
  at::Tensor dA = at::zeros_like(A);
  at::Tensor dB = need_dB ? at::zeros({parts, batch, G, L, N}, u.options())
                          : at::Tensor();
  at::Tensor dC = need_dC ? at::zeros({parts, batch, G, L, N}, u.options())
                          : at::Tensor();
  at::Tensor gl = glast.has_value() ? glast->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_backward", [&] {
    backward_impl<scalar_t>(u, dt, A, Bv, Cv, gy, gl, du, ddt, dA, dB, dC);
  });
  return {du, ddt, dA, dB, dC};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("scan_forward", &scan_forward, "selective scan forward (CPU)");
  m.def("scan_backward", &scan_backward, "selective scan backward (CPU)");
}
