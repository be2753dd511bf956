// The LIF/IF neuron: the same arithmetic, in the same order, as the Triton kernels in
// snnkern/ops/lif/kernels.py (and their load schedules: the forward's next step loaded before this
// step's stores, a backward chunk's loads before its stores). Host and device share this code, so the
// extension's CPU path (run by CI) checks the very functions its CUDA kernels run. Built with
// -fmad=false / -ffp-contract=off: no FMA contraction, so spikes and membranes are bitwise equal to the
// PyTorch reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#ifdef __CUDACC__
#define SNN_HD __host__ __device__ __forceinline__
// One out-of-line copy of the surrogate switch: inlined into the 16x unrolled backward chunk, its
// seven cases made cicc + ptxas take ~6 min per kernel instantiation (4 s out of line, same
// registers-only chunk: no stack, no spills).
#define SNN_HD_OUTLINED inline __host__ __device__ __noinline__
#else
#define SNN_HD inline
#define SNN_HD_OUTLINED inline
#endif

namespace snnkern {

constexpr int kChunk = 16;  // steps recomputed per backward chunk (== ops/lif.py MAX_CHUNK)

struct LifSpec {
  bool delayed;      // snnTorch: reset from the previous membrane, '>' spikes, pre-reset state carried
  int reset;         // 0 none, 1 subtract, 2 hard
  float v_reset;     // hard-reset target and resting potential
  float v_init;      // state when no v0
  bool decay_input;  // input scaled by (1 - beta)
  bool detach;       // no gradient through the reset
  int surrogate;     // ops/surrogate.py codes
  float alpha;
};

// beta / threshold: a float, one value in memory, one per neuron, or (period > 0) a per-feature /
// per-channel tensor read in place: neuron n takes element (n / div) % period (ops/lif/launch.py's
// broadcast_layout), where an expanded copy would cost a kernel and N floats every forward and backward.
// Read once per neuron, before the time loop: the division is not in the loop.
struct Param {
  const float* ptr;
  bool per_neuron;
  float value;
  int64_t div = 1, period = 0;
  SNN_HD float at(int64_t n) const {
    if (!ptr) return value;
    if (!per_neuron) return ptr[0];
    return ptr[period ? (n / div) % period : n];
  }
};

SNN_HD float charge(float v, float x, float beta, float omb, float leak, const LifSpec& p) {
  float h = p.decay_input ? beta * v + omb * x : beta * v + x;
  if (p.reset == 2) h = h + leak;
  return h;
}

SNN_HD float state_after(float h, float thr, const LifSpec& p) {
  if (p.delayed) return h;  // snnTorch carries the pre-reset membrane
  float s = (h - thr >= 0.f) ? 1.f : 0.f;
  if (p.reset == 1) return h - s * thr;
  if (p.reset == 2) return (1.f - s) * h + s * p.v_reset;
  return h;
}

// One step: returns h, writes the spike (0/1) and the new state.
SNN_HD float step(float state, float x, float beta, float omb, float leak, float thr, const LifSpec& p, float& s,
                  float& new_state) {
  float h;
  if (p.delayed) {
    float r = (state - thr > 0.f) ? 1.f : 0.f;
    if (p.reset == 1) {
      h = charge(state, x, beta, omb, leak, p) - r * thr;
    } else if (p.reset == 2) {
      h = charge((1.f - r) * state + r * p.v_reset, x, beta, omb, leak, p);
    } else {
      h = charge(state, x, beta, omb, leak, p);
    }
    s = (h - thr > 0.f) ? 1.f : 0.f;
  } else {
    h = charge(state, x, beta, omb, leak, p);
    s = (h - thr >= 0.f) ? 1.f : 0.f;
  }
  new_state = state_after(h, thr, p);
  return h;
}

SNN_HD_OUTLINED float surrogate_grad(float x, float alpha, int kind) {
  switch (kind) {
    case 0: {  // atan
      float y = (1.5707963267948966f * alpha) * x;
      return (0.5f * alpha) / (1.f + y * y);
    }
    case 1: {  // sigmoid
      float sg = 1.f / (1.f + expf(-(alpha * x)));
      return alpha * sg * (1.f - sg);
    }
    case 2: {  // fast_sigmoid
      float d = alpha * fabsf(x) + 1.f;
      return 1.f / (d * d);
    }
    case 3: {  // triangle
      float g = alpha - alpha * alpha * fabsf(x);
      return g < 0.f ? 0.f : g;  // NaN stays NaN, as torch.clamp_min in the reference
    }
    case 4:  // rectangle
      return fabsf(x) < 0.5f / alpha ? alpha : 0.f;
    case 5:  // straight_through
      return 1.f;
    default:  // snntorch_triangular
      return x >= 0.f ? -alpha : alpha;
  }
}

// V values moved by one access of V * sizeof(T) bytes (4 floats or 8 halves: LDG/STG.E.128; 4 halves: .64;
// 4 bytes: one 32-bit word; 8 floats: two .128), so the address must be a multiple of that size.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
SNN_HD Pack<T, V> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, V>*>(p);
}

template <int V, typename T>
SNN_HD void store_pack(T* p, const Pack<T, V>& value) {
  *reinterpret_cast<Pack<T, V>*>(p) = value;
}

// The inputs of V neurons as one access loaded them. An even number of 16-bit inputs stays in its 32-bit
// words until a step reads an element: a Pack of 16-bit values is split into one register per element at
// the load, so the row carried into the next step took V registers instead of V / 2 (8 a thread: 4 more,
// and the bf16 kernel spilled).
template <typename xT, int V, bool kWords = sizeof(xT) == 2 && V % 2 == 0>
struct InputRow {
  Pack<xT, V> p;
  SNN_HD explicit InputRow(const xT* x) : p(load_pack<V>(x)) {}
  SNN_HD float at(int j) const { return static_cast<float>(p.v[j]); }
};

template <typename xT, int V>
struct InputRow<xT, V, true> {
  Pack<uint32_t, V / 2> w;
  SNN_HD explicit InputRow(const xT* x) : w(load_pack<V / 2>(reinterpret_cast<const uint32_t*>(x))) {}
  SNN_HD float at(int j) const {  // element 2k is word k's low half (little endian)
    const uint32_t word = w.v[j / 2];
    return static_cast<float>(xT(static_cast<uint16_t>(j % 2 ? word >> 16 : word), xT::from_bits()));
  }
};

// Spikes written as the pack_spikes layout (bit j of word w: neuron 32w + j of a row) by the forward itself,
// V bits a thread. The caller runs it only where 32 | N (rows of 32 | the last dim hold whole words), so
// row % 32 == n % 32 and the 32 / V threads of consecutive groups share a word.
template <int V>
SNN_HD void store_spike_bits(int32_t* words, int64_t row, uint32_t bits) {
  static_assert(32 % V == 0, "a word holds whole groups");
  const uint64_t at = static_cast<uint64_t>(row);  // rows are never negative: shifts, not signed division
  const uint32_t placed = bits << (at % 32);
#ifdef __CUDA_ARCH__
  // the 32 / V lanes of a word OR their bits together and the first stores it (one lane a neuron: the
  // ballot is the word). The mask names those lanes only: they all run this call (32 | N, so none of them
  // stopped at n >= N), where the warp's other lanes may have.
  constexpr unsigned kLanes = 32 / V;
  const unsigned lane = threadIdx.x % 32;  // blockDim.x is a multiple of 32
  const unsigned group = kLanes == 32 ? ~0u : ((1u << (kLanes % 32)) - 1) << (lane & ~(kLanes - 1));
  uint32_t word = placed;
  if constexpr (V == 1) {
    word = __ballot_sync(group, bits);
  } else {
#pragma unroll
    for (unsigned d = 1; d < kLanes; d <<= 1) word |= __shfl_xor_sync(group, word, d);
  }
  if (lane % kLanes == 0) words[at / 32] = static_cast<int32_t>(word);
#else
  // the host runs the groups in increasing n: a word's first group writes it, the next ones add their bits
  int32_t& word = words[at / 32];
  word = static_cast<int32_t>(at % 32 == 0 ? placed : static_cast<uint32_t>(word) | placed);
#endif
}

static_assert((kChunk & (kChunk - 1)) == 0, "kChunk must be a power of two");

// The forward of the V adjacent neurons n .. n+V-1, each with the arithmetic of step() in the same order
// whatever V is. Every row access moves the V neurons' values at once, so with V > 1 the caller
// guarantees n and N multiples of V and every pointer aligned to V of its elements (lif_fwd_native checks,
// and falls back to a narrower V when they are not). The next step's inputs are loaded before this step's stores:
// one load in flight while a step computes, not waiting behind stores it might alias (the last step
// re-reads its own row: in bounds, never used).
template <int V, typename xT, typename sT>
SNN_HD void forward_neurons(int64_t n, int64_t N, int64_t T, const xT* __restrict__ x, const float* __restrict__ v0,
                            Param beta_p, Param thr_p, sT* __restrict__ spikes, float* __restrict__ v_last,
                            float* __restrict__ v_seq, float* __restrict__ ckpt, const LifSpec& p) {
  constexpr bool kPacked = std::is_same<sT, int32_t>::value;  // int32 spikes: 32 a word (store_spike_bits)
  float beta[V], thr[V], omb[V], leak[V], state[V];
  const Pack<float, V> init = v0 ? load_pack<V>(v0 + n) : Pack<float, V>{};
#pragma unroll
  for (int j = 0; j < V; ++j) {
    beta[j] = beta_p.at(n + j), thr[j] = thr_p.at(n + j);
    omb[j] = 1.f - beta[j], leak[j] = omb[j] * p.v_reset;
    state[j] = v0 ? init.v[j] : p.v_init;
  }
  InputRow<xT, V> x_next(x + n);
  int64_t row = n, ckpt_row = n;  // t * N + n; (c - 1) * N + n for the checkpoint of chunk c
  for (int64_t t = 0; t < T; ++t) {
    const InputRow<xT, V> xt = x_next;
    const int64_t next = t + 1 < T ? row + N : row;
    x_next = InputRow<xT, V>(x + next);
    Pack<float, V> st;
    if (ckpt && t > 0 && (t & (kChunk - 1)) == 0) {
#pragma unroll
      for (int j = 0; j < V; ++j) st.v[j] = state[j];
      store_pack(ckpt + ckpt_row, st);
      ckpt_row += N;
    }
    Pack<sT, V> s;
    uint32_t bits = 0;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float sj;
      step(state[j], xt.at(j), beta[j], omb[j], leak[j], thr[j], p, sj, state[j]);
      if constexpr (kPacked)
        bits |= static_cast<uint32_t>(sj) << j;
      else
        s.v[j] = static_cast<sT>(sj);
      st.v[j] = state[j];
    }
    if constexpr (kPacked)
      store_spike_bits<V>(spikes, row, bits);
    else
      store_pack(spikes + row, s);
    if (v_seq) store_pack(v_seq + row, st);
    row = next;
  }
  Pack<float, V> last;
#pragma unroll
  for (int j = 0; j < V; ++j) last.v[j] = state[j];
  store_pack(v_last + n, last);
}

// One neuron (V = 1): what runs, on the GPU and on the CPU, where rows are not aligned to a vector.
template <typename xT, typename sT>
SNN_HD void forward_neuron(int64_t n, int64_t N, int64_t T, const xT* x, const float* v0, Param beta_p, Param thr_p,
                           sT* spikes, float* v_last, float* v_seq, float* ckpt, const LifSpec& p) {
  forward_neurons<1, xT, sT>(n, N, T, x, v0, beta_p, thr_p, spikes, v_last, v_seq, ckpt, p);
}

// The backward of one neuron: recompute each chunk of kChunk steps from its checkpoint (values kept
// in registers: the loops are unrolled over the constant chunk length), then walk it in reverse.
template <typename xT, typename gT>
SNN_HD void backward_neuron(int64_t n, int64_t N, int64_t T, const xT* x, const float* v0, Param beta_p,
                            Param thr_p, const float* ckpt, const gT* grad_spikes, const float* grad_v_last,
                            const float* grad_v_seq, xT* grad_x, float* grad_v0, float* grad_beta,
                            float* grad_thr, const LifSpec& p) {
  const float beta = beta_p.at(n), thr = thr_p.at(n);
  const float omb = 1.f - beta, leak = omb * p.v_reset;
  float g_state = grad_v_last ? grad_v_last[n] : 0.f;
  float g_beta = 0.f, g_thr = 0.f;
  const int64_t n_chunks = (T + kChunk - 1) / kChunk;
  const bool has_gs = grad_spikes != nullptr, has_gvs = grad_v_seq != nullptr;
  for (int64_t c = n_chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk;
    const int64_t len = T - t0 < kChunk ? T - t0 : kChunk;
    const float state0 = c > 0 ? ckpt[(c - 1) * N + n] : (v0 ? v0[n] : p.v_init);
    // every load of the chunk (inputs and both upstream gradients) is issued here, before the chunk's
    // first grad_x store: loaded in the reverse walk, each would wait behind the previous step's store
    // (a loop of loads only, with no branch: steps past the end of a short last chunk re-read its last
    // step — in bounds, never used — so all 3 x kChunk loads can be issued back to back)
    float hs[kChunk], xs[kChunk], gss[kChunk], gvss[kChunk];
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      const int64_t t = t0 + (i < len ? i : len - 1);
      xs[i] = static_cast<float>(x[t * N + n]);
      gss[i] = has_gs ? static_cast<float>(grad_spikes[t * N + n]) : 0.f;
      gvss[i] = has_gvs ? grad_v_seq[t * N + n] : 0.f;
    }
    float state = state0;
#pragma unroll
    for (int i = 0; i < kChunk; ++i) {
      if (i < len) {
        float s;
        hs[i] = step(state, xs[i], beta, omb, leak, thr, p, s, state);
      }
    }
#pragma unroll
    for (int i = kChunk - 1; i >= 0; --i) {
      if (i >= len) continue;
      const int64_t t = t0 + i;
      const float h = hs[i];
      const float prev = i == 0 ? state0 : state_after(hs[i > 0 ? i - 1 : 0], thr, p);
      if (has_gvs) g_state += gvss[i];
      const float gs = gss[i];
      const float d = h - thr;
      const float sg = surrogate_grad(d, p.alpha, p.surrogate);
      float gh, dthr, dh_dprev, dh_dbeta;
      if (p.delayed) {
        const float r = (prev - thr > 0.f) ? 1.f : 0.f;  // detached
        gh = g_state + gs * sg;
        dthr = -gs * sg;
        if (p.reset == 1) dthr = dthr - r * gh;
        if (p.reset == 2) {
          dh_dprev = beta * (1.f - r);
          dh_dbeta = (1.f - r) * prev + r * p.v_reset - p.v_reset;
        } else {
          dh_dprev = beta;
          dh_dbeta = prev;
        }
      } else {
        const float s = (d >= 0.f) ? 1.f : 0.f;
        float dv_ds = 0.f, dv_dh = 1.f;
        if (p.reset == 1) {
          dv_ds = -thr;
        } else if (p.reset == 2) {
          dv_ds = p.v_reset - h;
          dv_dh = 1.f - s;
        }
        const float g_spike = p.detach ? gs : gs + g_state * dv_ds;
        gh = g_spike * sg + g_state * dv_dh;
        dthr = -g_spike * sg;
        if (p.reset == 1) dthr = dthr - g_state * s;
        dh_dprev = beta;
        dh_dbeta = p.reset == 2 ? prev - p.v_reset : prev;
      }
      float gx;
      if (p.decay_input) {
        dh_dbeta = dh_dbeta - xs[i];
        gx = gh * omb;
      } else {
        gx = gh;
      }
      grad_x[t * N + n] = static_cast<xT>(gx);
      g_beta += gh * dh_dbeta;
      g_thr += dthr;
      g_state = gh * dh_dprev;
    }
  }
  if (grad_v0) grad_v0[n] = g_state;
  if (grad_beta) grad_beta[n] = g_beta;
  if (grad_thr) grad_thr[n] = g_thr;
}

// bit packing: word w of a row holds elements 32w .. 32w+31, least significant bit first
template <typename sT>
SNN_HD int32_t pack_word(const sT* row, int64_t K, int64_t w) {
  uint32_t word = 0;
  for (int j = 0; j < 32; ++j) {
    const int64_t k = w * 32 + j;
    if (k < K && static_cast<float>(row[k]) != 0.f) word |= (1u << j);
  }
  return static_cast<int32_t>(word);
}

}  // namespace snnkern
