// Memory-safety check of csrc/lif_core.cuh, the per-neuron code that the CUDA kernels and the CPU
// kernels of snnkern._C share: every option combination runs over exact-size heap buffers (what the
// registered ops allocate), built with AddressSanitizer + UBSan by test_csrc_memcheck.py, so an
// out-of-bounds index or an overflow aborts the run. On a GPU, compute-sanitizer checks the kernels'
// launch side (bench/gpu_session.sh sanitize).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "lif_core.cuh"

using namespace snnkern;

namespace {

std::mt19937 rng(1234);

std::vector<float> randn(size_t n, float scale) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

template <typename T>
T* ptr_or_null(std::vector<T>& v, bool use) { return use ? v.data() : nullptr; }

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// One forward + backward over every neuron, buffers sized exactly as lif_fwd_native/lif_bwd_native do.
// period > 0: beta and threshold read in place, `period` values indexed (n / div) % period.
bool run_case(int64_t T, int64_t N, const LifSpec& p, bool per_neuron, bool has_v0, bool store_v, bool grads,
              int64_t div = 1, int64_t period = 0) {
  const int64_t n_ckpt = (T - 1) / kChunk;  // checkpoints after every full chunk but the last
  std::vector<float> x = randn(T * N, 1.5f), v0 = randn(N, 0.5f);
  const int64_t P = period ? period : N;
  std::vector<float> beta(P), thr(P);
  for (int64_t n = 0; n < P; ++n) beta[n] = 0.5f + 0.4f * static_cast<float>(n % 3) / 3.f, thr[n] = 1.f;
  Param bp{per_neuron ? beta.data() : nullptr, per_neuron, 0.9f, div, period};
  Param tp{per_neuron ? thr.data() : nullptr, per_neuron, 1.f, div, period};
  std::vector<uint8_t> spikes(T * N);
  std::vector<float> v_last(N), v_seq(T * N), ckpt(n_ckpt * N);
  for (int64_t n = 0; n < N; ++n)
    forward_neuron<float, uint8_t>(n, N, T, x.data(), ptr_or_null(v0, has_v0), bp, tp, spikes.data(), v_last.data(),
                                   ptr_or_null(v_seq, store_v), ptr_or_null(ckpt, n_ckpt > 0), p);
  std::vector<float> gs = randn(T * N, 1.f), gv = randn(N, 1.f), gvs = randn(T * N, 1.f);
  std::vector<float> gx(T * N), gv0(N), gbeta(N), gthr(N);
  for (int64_t n = 0; n < N; ++n)
    backward_neuron<float, float>(n, N, T, x.data(), ptr_or_null(v0, has_v0), bp, tp, ptr_or_null(ckpt, n_ckpt > 0),
                                  gs.data(), ptr_or_null(gv, grads), ptr_or_null(gvs, grads && store_v), gx.data(),
                                  ptr_or_null(gv0, grads), ptr_or_null(gbeta, grads), ptr_or_null(gthr, grads), p);
  // values are test_lif_kernels.py's business (the gradients may even overflow: straight-through and
  // snnTorch's triangular surrogate never decay, so hard reset over 50 steps can compound to inf)
  for (uint8_t s : spikes)
    if (s > 1) return false;
  return all_finite(v_last);
}

bool run_pack(int64_t rows, int64_t K) {
  const int64_t W = (K + 31) / 32;
  std::vector<float> s(rows * K);
  for (int64_t i = 0; i < rows * K; ++i) s[i] = (rng() % 3 == 0) ? 1.f : 0.f;
  std::vector<int32_t> out(rows * W);
  for (int64_t i = 0; i < rows * W; ++i) out[i] = pack_word<float>(s.data() + (i / W) * K, K, i % W);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k)
      if (((static_cast<uint32_t>(out[r * W + k / 32]) >> (k % 32)) & 1u) != (s[r * K + k] != 0.f)) return false;
  return true;
}

// Spikes packed by the forward itself (int32 words, 32 | N): exact-size word buffers, and the words equal
// pack_word over the byte spikes of the same forward.
template <int V>
bool run_packed_forward(int64_t T, int64_t N, const LifSpec& p) {
  std::vector<float> x = randn(T * N, 1.5f), v_last(N);
  const Param bp{nullptr, false, 0.9f}, tp{nullptr, false, 1.f};
  std::vector<uint8_t> spikes(T * N);
  std::vector<int32_t> words(T * N / 32);
  for (int64_t n = 0; n < N; ++n)
    forward_neuron<float, uint8_t>(n, N, T, x.data(), nullptr, bp, tp, spikes.data(), v_last.data(), nullptr, nullptr,
                                   p);
  for (int64_t n = 0; n < N; n += V)
    forward_neurons<V, float, int32_t>(n, N, T, x.data(), nullptr, bp, tp, words.data(), v_last.data(), nullptr,
                                       nullptr, p);
  for (int64_t i = 0; i < T * N / 32; ++i)
    if (words[i] != pack_word<uint8_t>(spikes.data() + (i / (N / 32)) * N, N, i % (N / 32))) return false;
  return true;
}

}  // namespace

int main() {
  int cases = 0, failed = 0;
  for (int64_t T : {1, 2, 15, 16, 17, 32, 33, 50})
    for (int64_t N : {1, 5})
      for (int delayed = 0; delayed < 2; ++delayed)
        for (int reset = 0; reset < 3; ++reset)
          for (int detach = 0; detach < 2; ++detach)
            for (int surrogate = 0; surrogate < 7; ++surrogate)
              for (int flags = 0; flags < 16; ++flags) {
                const LifSpec p{delayed != 0, reset, 0.f, 0.f, (flags & 1) != 0, detach != 0, surrogate, 2.f};
                ++cases;
                if (!run_case(T, N, p, (flags & 2) != 0, (flags & 4) != 0, (flags & 8) != 0, (T + N + flags) % 2 == 0))
                  ++failed;
              }
  // per-channel parameters read in place: [C] of [B, C] (div 1) and [C, 1, 1] of [B, C, H, W] (div H*W)
  for (int64_t T : {1, 17, 33})
    for (int64_t N : {12, 30})
      for (int64_t div : {1, 2, 3})
        for (int reset = 0; reset < 3; ++reset) {
          const int64_t period = 3;
          const LifSpec p{reset == 1, reset, 0.f, 0.f, reset != 2, false, reset, 2.f};
          ++cases;
          if (!run_case(T, N, p, true, true, true, true, div, period)) ++failed;
        }
  for (int64_t K : {1, 31, 32, 33, 70, 96})
    for (int64_t rows : {1, 3}) {
      ++cases;
      if (!run_pack(rows, K)) ++failed;
    }
  for (int64_t T : {1, 17})
    for (int64_t N : {32, 96})
      for (int reset = 0; reset < 3; ++reset) {
        const LifSpec p{false, reset, 0.f, 0.f, false, false, 0, 2.f};
        cases += 3;
        failed += !run_packed_forward<1>(T, N, p) + !run_packed_forward<4>(T, N, p) + !run_packed_forward<8>(T, N, p);
      }
  std::printf("%d cases, %d failed\n", cases, failed);
  return failed ? 1 : 0;
}
