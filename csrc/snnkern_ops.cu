// snnkern's C++/CUDA backend: the LIF/IF forward and backward and spike bit-packing, registered as
// implementations of the torch ops snnkern::lif_fwd_native, ... (declared in snnkern/ops/schemas.py) with
// CUDA kernels and a CPU path that runs the same per-neuron code (lif_core.cuh). Python selects it with
// backend="cuda".
#include <torch/extension.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <vector>
#include <type_traits>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "lif_core.cuh"

namespace snnkern {
namespace {

constexpr int kThreads = 256;

LifSpec make_spec(bool delayed, int64_t reset, double v_reset, double v_init, bool decay_input, bool detach,
                  int64_t surrogate, double alpha) {
  TORCH_CHECK(reset >= 0 && reset <= 2, "snnkern: reset code must be 0, 1 or 2, got ", reset);
  TORCH_CHECK(surrogate >= 0 && surrogate <= 6, "snnkern: unknown surrogate code ", surrogate);
  return LifSpec{delayed, static_cast<int>(reset), static_cast<float>(v_reset), static_cast<float>(v_init),
                 decay_input, detach, static_cast<int>(surrogate), static_cast<float>(alpha)};
}

// beta/threshold tensor (fp32 contiguous: one value, one per neuron, or with period > 0 the `period` values
// neuron n indexes as (n / div) % period) or a float
Param make_param(const c10::optional<at::Tensor>& t, double value, int64_t N, int64_t div, int64_t period,
                 const char* name) {
  if (!t.has_value()) return Param{nullptr, false, static_cast<float>(value)};
  TORCH_CHECK(t->scalar_type() == at::kFloat && t->is_contiguous(), "snnkern: ", name, " must be contiguous fp32");
  if (period > 0) {
    TORCH_CHECK(div >= 1 && t->numel() == period, "snnkern: ", name, " read in place needs div >= 1 and ", period,
                " values, got div=", div, " and ", t->numel());
    return Param{t->data_ptr<float>(), true, 0.f, div, period};
  }
  TORCH_CHECK(t->numel() == 1 || t->numel() == N, "snnkern: ", name, " must hold 1 or ", N, " values");
  return Param{t->data_ptr<float>(), t->numel() != 1, 0.f};
}

// param_layout: beta's (div, period), then threshold's; period 0 where the tensor holds 1 or N values
std::pair<Param, Param> make_params(const c10::optional<at::Tensor>& beta, double beta_value,
                                    const c10::optional<at::Tensor>& threshold, double threshold_value, int64_t N,
                                    at::IntArrayRef layout) {
  TORCH_CHECK(layout.size() == 4, "snnkern: param_layout must hold 4 ints (beta div, period, threshold div, period)");
  return {make_param(beta, beta_value, N, layout[0], layout[1], "beta"),
          make_param(threshold, threshold_value, N, layout[2], layout[3], "threshold")};
}

void check_device(const at::Tensor& ref, const c10::optional<at::Tensor>& t, const char* name) {
  if (t.has_value()) TORCH_CHECK(t->device() == ref.device(), "snnkern: ", name, " is on ", t->device(),
                                 " but x is on ", ref.device());
}

// Neurons per thread where every row is aligned to them: as many as one 16-byte load of x holds (4 fp32,
// 8 bf16/fp16), so every x load is LDG.E.128 (4 bf16/fp16 a thread moved 8 bytes a load and kept half the
// fp32 kernel's bytes in flight). 16-bit rows aligned to kVec elements but not 8 take the 4-wide kernel
// (8-byte loads), other rows one neuron a thread. Registers: at most 48 for the 4-wide kernel (5 blocks, 40
// warps per SM; unbounded it takes 52 with uint8 spikes, 32 warps), 32 for the scalar one (64 warps), 64 for
// the 8-wide one (4 blocks, 32 warps; unbounded 77-89, 16-24 warps): 16 bytes a thread at 32 warps keep
// 16 KB in flight per SM where 8 bytes at 40 kept 10 (sm_90 SASS, test_csrc_sass.py). Packed spikes (int32
// words): the lanes' shuffles took the 4-wide fp32 kernel to 16 bytes of spills under 48, so a packed vector
// kernel gets 64 (4-wide: 54 in fp32, 32 warps; 48 in bf16/fp16, 40 warps).
constexpr int kLoadBytes = 16;
constexpr int kVec = 4;
template <typename xT>
constexpr int kWideVec = kLoadBytes / sizeof(xT);

constexpr int fwd_min_blocks(int V, bool packed) { return V > kVec || (packed && V > 1) ? 4 : V > 1 ? 5 : 8; }

template <int V, typename xT, typename sT>
__global__ void __launch_bounds__(kThreads, fwd_min_blocks(V, std::is_same<sT, int32_t>::value))
    lif_fwd_kernel(int64_t N, int64_t T, const xT* x, const float* v0, Param beta, Param thr, sT* s, float* v_last,
                   float* v_seq, float* ckpt, LifSpec p) {
  const int64_t n = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V;
  if (n < N) forward_neurons<V, xT, sT>(n, N, T, x, v0, beta, thr, s, v_last, v_seq, ckpt, p);
}

// At most 128 registers (two 256-thread blocks, 16 warps per SM): the chunk's prefetched gradients
// took it to 134, which halves the resident warps (8) and with them the bytes in flight.
template <typename xT, typename gT>
__global__ void __launch_bounds__(kThreads, 2)
    lif_bwd_kernel(int64_t N, int64_t T, const xT* x, const float* v0, Param beta, Param thr, const float* ckpt,
                   const gT* gs, const float* gv, const float* gvs, xT* gx, float* gv0, float* gbeta, float* gthr,
                   LifSpec p) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < N) backward_neuron<xT, gT>(n, N, T, x, v0, beta, thr, ckpt, gs, gv, gvs, gx, gv0, gbeta, gthr, p);
}

template <typename sT>
__global__ void pack_kernel(int64_t rows, int64_t K, int64_t W, const sT* s, int32_t* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * W) out[i] = pack_word<sT>(s + (i / W) * K, K, i % W);
}

template <typename oT>
__global__ void unpack_kernel(int64_t rows, int64_t K, int64_t W, const int32_t* p, oT* out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < rows * K) {
    const int64_t r = i / K, k = i % K;
    out[i] = static_cast<oT>(static_cast<float>((static_cast<uint32_t>(p[r * W + k / 32]) >> (k % 32)) & 1u));
  }
}

int64_t blocks(int64_t n) { return (n + kThreads - 1) / kThreads; }

// The V the last lif_fwd_native call ran (8, 4 or 1 neurons a thread): tests read it to know each path ran.
std::atomic<int> last_forward_vec{0};

// whether p (null counts as aligned) may be accessed V elements at a time
template <int V, typename T>
bool aligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % (V * sizeof(T)) == 0;
}

// Runs f(tag) with a value of the C++ type of a kernel dtype: fp32, bf16, fp16 (the input dtypes; each
// instantiation costs compile time, so no fp64).
template <typename F>
void dispatch_float(at::ScalarType st, F&& f) {
  switch (st) {
    case at::kFloat: f(float{}); break;
    case at::kBFloat16: f(at::BFloat16{}); break;
    case at::kHalf: f(at::Half{}); break;
    default: TORCH_CHECK(false, "snnkern: the C++ backend takes float32, bfloat16 or float16, got ", st);
  }
}

// Spikes are stored in the input's dtype (xT), bool or uint8, or bit-packed into int32 words.
template <typename xT, typename F>
void dispatch_spike_dtype(at::ScalarType st, at::ScalarType x_st, F&& f) {
  if (st == x_st) return f(xT{});
  switch (st) {
    case at::kBool: f(bool{}); break;
    case at::kByte: f(uint8_t{}); break;
    case at::kInt: f(int32_t{}); break;
    default: TORCH_CHECK(false, "snnkern: spikes must be in the input dtype, bool, uint8 or int32 (packed), got ", st);
  }
}

// pack/unpack take any spike dtype
template <typename F>
void dispatch_any_spike(at::ScalarType st, F&& f) {
  switch (st) {
    case at::kBool: f(bool{}); break;
    case at::kByte: f(uint8_t{}); break;
    default: dispatch_float(st, f);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_fwd_native(
    const at::Tensor& x_in, const c10::optional<at::Tensor>& v0, const c10::optional<at::Tensor>& beta,
    const c10::optional<at::Tensor>& threshold, bool delayed, int64_t reset, double v_reset, double v_init,
    bool decay_input, bool detach_reset, int64_t surrogate, double alpha, double beta_value, double threshold_value,
    at::ScalarType spike_dtype, bool return_membrane, bool save_for_backward, at::IntArrayRef param_layout) {
  TORCH_CHECK(x_in.dim() >= 1 && x_in.size(0) >= 1, "snnkern: x must be [T, ...] with T >= 1");
  check_device(x_in, v0, "v0");
  check_device(x_in, beta, "beta");
  check_device(x_in, threshold, "threshold");
  const at::Tensor x = x_in.contiguous();
  const int64_t T = x.size(0), N = T ? x.numel() / T : 0;
  auto rest = x.sizes().slice(1);
  auto f32 = x.options().dtype(at::kFloat);
  // int32: the pack_spikes layout, written by the kernels where every word holds neurons of one row
  // (32 | the last dim; ops/lif/launch.py packs uint8 spikes after otherwise)
  const bool packed = spike_dtype == at::kInt;
  TORCH_CHECK(!packed || (x.dim() >= 2 && x.size(-1) % 32 == 0),
              "snnkern: lif_fwd_native packs spikes only when the last dim is a multiple of 32, got ", x.sizes());
  std::vector<int64_t> spike_shape(x.sizes().begin(), x.sizes().end());
  if (packed) spike_shape.back() /= 32;
  at::Tensor spikes = at::empty(spike_shape, x.options().dtype(spike_dtype));
  at::Tensor v_last = at::empty(rest, f32);
  at::Tensor v_seq = return_membrane ? at::empty(x.sizes(), f32) : at::empty({0}, f32);
  std::vector<int64_t> ckpt_shape{save_for_backward ? (T - 1) / kChunk : 0};
  ckpt_shape.insert(ckpt_shape.end(), rest.begin(), rest.end());
  at::Tensor ckpt = at::empty(ckpt_shape, f32);
  if (N == 0) return {spikes, v_last, v_seq, ckpt};
  const LifSpec p = make_spec(delayed, reset, v_reset, v_init, decay_input, detach_reset, surrogate, alpha);
  const std::pair<Param, Param> params = make_params(beta, beta_value, threshold, threshold_value, N, param_layout);
  const Param bp = params.first, tp = params.second;  // (not a structured binding: C++17 lambdas cannot capture one)
  const at::Tensor v0c = v0.has_value() ? v0->to(at::kFloat).contiguous() : at::Tensor();
  const float* v0p = v0.has_value() ? v0c.data_ptr<float>() : nullptr;
  float* vs = return_membrane ? v_seq.data_ptr<float>() : nullptr;
  float* ck = ckpt.numel() ? ckpt.data_ptr<float>() : nullptr;
  dispatch_float(x.scalar_type(), [&](auto xtag) {
    using xT = decltype(xtag);
    dispatch_spike_dtype<xT>(spike_dtype, x.scalar_type(), [&](auto tag) {
      using sT = decltype(tag);
      sT* sp = reinterpret_cast<sT*>(spikes.data_ptr());
      const xT* xp = reinterpret_cast<const xT*>(x.data_ptr());
      float* vl = v_last.data_ptr<float>();
      // rows start at multiples of N elements: with V | N and every base aligned to V elements (x and v0 may
      // be views at any offset), each group of V neurons is one aligned access in every row. The CPU path makes
      // the same choice, so CI's CPU tests check the vector kernels' indexing too.
      auto fits = [&](auto v) {
        constexpr int V = decltype(v)::value;
        const bool spikes_fit = std::is_same<sT, int32_t>::value || aligned<V>(sp);  // packed: one word a group
        return N % V == 0 && aligned<V>(xp) && spikes_fit && aligned<V>(vl) && aligned<V>(vs) && aligned<V>(ck) &&
               aligned<V>(v0p);
      };
      auto run = [&](auto v) {
        constexpr int V = decltype(v)::value;
        last_forward_vec.store(V, std::memory_order_relaxed);
        if (x.is_cuda()) {
          const c10::cuda::CUDAGuard guard(x.device());
          lif_fwd_kernel<V, xT, sT><<<blocks(N / V), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
              N, T, xp, v0p, bp, tp, sp, vl, vs, ck, p);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        } else {
          for (int64_t n = 0; n < N; n += V) forward_neurons<V, xT, sT>(n, N, T, xp, v0p, bp, tp, sp, vl, vs, ck, p);
        }
      };
      using Wide = std::integral_constant<int, kWideVec<xT>>;
      using Narrow = std::integral_constant<int, kVec>;
      if (fits(Wide{}))
        run(Wide{});
      else if (Wide::value > kVec && fits(Narrow{}))
        run(Narrow{});
      else
        run(std::integral_constant<int, 1>{});
    });
  });
  return {spikes, v_last, v_seq, ckpt};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lif_bwd_native(
    const c10::optional<at::Tensor>& grad_spikes, const c10::optional<at::Tensor>& grad_v_last,
    const c10::optional<at::Tensor>& grad_v_seq, const at::Tensor& x_in, const c10::optional<at::Tensor>& v0,
    const c10::optional<at::Tensor>& beta, const c10::optional<at::Tensor>& threshold, const at::Tensor& checkpoints,
    bool delayed, int64_t reset, double v_reset, double v_init, bool decay_input, bool detach_reset,
    int64_t surrogate, double alpha, double beta_value, double threshold_value, at::ScalarType /*spike_dtype*/,
    bool /*return_membrane*/, bool need_v0_grad, bool need_beta_grad, bool need_threshold_grad,
    at::IntArrayRef param_layout) {
  const at::Tensor x = x_in.contiguous();
  const int64_t T = x.size(0), N = T ? x.numel() / T : 0;
  TORCH_CHECK(T <= kChunk || checkpoints.size(0) == (T - 1) / kChunk,
              "snnkern: lif_bwd_native needs the forward's checkpoints (save_for_backward=True)");
  auto rest = x.sizes().slice(1);
  auto f32 = x.options().dtype(at::kFloat);
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  auto per_neuron = [&](bool need) { return need ? at::empty(rest, f32) : at::empty({0}, f32); };
  at::Tensor gv0 = per_neuron(need_v0_grad), gbeta = per_neuron(need_beta_grad), gthr = per_neuron(need_threshold_grad);
  if (N == 0) return {grad_x, gv0, gbeta, gthr};
  const LifSpec p = make_spec(delayed, reset, v_reset, v_init, decay_input, detach_reset, surrogate, alpha);
  const std::pair<Param, Param> params = make_params(beta, beta_value, threshold, threshold_value, N, param_layout);
  const Param bp = params.first, tp = params.second;  // (not a structured binding: C++17 lambdas cannot capture one)
  const at::Tensor v0c = v0.has_value() ? v0->to(at::kFloat).contiguous() : at::Tensor();
  const at::Tensor gvc = grad_v_last.has_value() ? grad_v_last->to(at::kFloat).contiguous() : at::Tensor();
  const at::Tensor gvsc = grad_v_seq.has_value() ? grad_v_seq->to(at::kFloat).contiguous() : at::Tensor();
  const at::Tensor ckc = checkpoints.contiguous();
  const float* v0p = v0.has_value() ? v0c.data_ptr<float>() : nullptr;
  const float* gvp = grad_v_last.has_value() ? gvc.data_ptr<float>() : nullptr;
  const float* gvsp = grad_v_seq.has_value() ? gvsc.data_ptr<float>() : nullptr;
  const float* ck = ckc.numel() ? ckc.data_ptr<float>() : nullptr;
  float* gv0p = need_v0_grad ? gv0.data_ptr<float>() : nullptr;
  float* gbp = need_beta_grad ? gbeta.data_ptr<float>() : nullptr;
  float* gtp = need_threshold_grad ? gthr.data_ptr<float>() : nullptr;
  dispatch_float(x.scalar_type(), [&](auto xtag) {
    using xT = decltype(xtag);
    // the spike gradient arrives in the spike dtype, which is x's dtype on the autograd path
    const at::Tensor gs = grad_spikes.has_value() ? grad_spikes->to(x.scalar_type()).contiguous() : at::Tensor();
    const xT* gsp = grad_spikes.has_value() ? reinterpret_cast<const xT*>(gs.data_ptr()) : nullptr;
    if (x.is_cuda()) {
      const c10::cuda::CUDAGuard guard(x.device());
      lif_bwd_kernel<xT, xT><<<blocks(N), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          N, T, reinterpret_cast<const xT*>(x.data_ptr()), v0p, bp, tp, ck, gsp, gvp, gvsp, reinterpret_cast<xT*>(grad_x.data_ptr()), gv0p, gbp, gtp, p);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      for (int64_t n = 0; n < N; ++n)
        backward_neuron<xT, xT>(n, N, T, reinterpret_cast<const xT*>(x.data_ptr()), v0p, bp, tp, ck, gsp, gvp, gvsp, reinterpret_cast<xT*>(grad_x.data_ptr()),
                                gv0p, gbp, gtp, p);
    }
  });
  return {grad_x, gv0, gbeta, gthr};
}

at::Tensor pack_spikes_native(const at::Tensor& s_in) {
  TORCH_CHECK(s_in.dim() >= 1, "snnkern: s must have at least one dim");
  const at::Tensor s = s_in.contiguous();
  const int64_t K = s.size(-1), W = (K + 31) / 32, rows = K ? s.numel() / K : 0;
  std::vector<int64_t> shape(s.sizes().begin(), s.sizes().end());
  shape.back() = W;
  at::Tensor out = at::empty(shape, s.options().dtype(at::kInt));
  if (out.numel() == 0) return out;
  dispatch_any_spike(s.scalar_type(), [&](auto tag) {
    using sT = decltype(tag);
    const sT* sp = reinterpret_cast<const sT*>(s.data_ptr());
    if (s.is_cuda()) {
      const c10::cuda::CUDAGuard guard(s.device());
      pack_kernel<sT><<<blocks(rows * W), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          rows, K, W, sp, out.data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      for (int64_t i = 0; i < rows * W; ++i) out.data_ptr<int32_t>()[i] = pack_word<sT>(sp + (i / W) * K, K, i % W);
    }
  });
  return out;
}

at::Tensor unpack_spikes_native(const at::Tensor& p_in, int64_t k, at::ScalarType dtype) {
  TORCH_CHECK(p_in.scalar_type() == at::kInt, "snnkern: packed spikes must be int32");
  const at::Tensor p = p_in.contiguous();
  const int64_t W = p.size(-1), rows = W ? p.numel() / W : 0;
  TORCH_CHECK((k + 31) / 32 == W, "snnkern: k=", k, " does not match ", W, " words");
  std::vector<int64_t> shape(p.sizes().begin(), p.sizes().end());
  shape.back() = k;
  at::Tensor out = at::empty(shape, p.options().dtype(dtype));
  if (out.numel() == 0) return out;
  dispatch_any_spike(dtype, [&](auto tag) {
    using oT = decltype(tag);
    oT* op = reinterpret_cast<oT*>(out.data_ptr());
    if (p.is_cuda()) {
      const c10::cuda::CUDAGuard guard(p.device());
      unpack_kernel<oT><<<blocks(rows * k), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          rows, k, W, p.data_ptr<int32_t>(), op);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      const int32_t* pp = p.data_ptr<int32_t>();
      for (int64_t i = 0; i < rows * k; ++i) {
        const int64_t r = i / k, j = i % k;
        op[i] = static_cast<oT>(static_cast<float>((static_cast<uint32_t>(pp[r * W + j / 32]) >> (j % 32)) & 1u));
      }
    }
  });
  return out;
}

}  // namespace

// The schemas of these ops are declared once, in Python (snnkern/ops/schemas.py): this file only
// implements them. They are registered when Python calls register_kernels() (snnkern/_extension.py, after
// the schemas exist), not by static TORCH_LIBRARY_IMPL blocks: a static registration whose signature has
// drifted from the schema (an extension built from older sources, e.g. an editable install not rebuilt
// after a pull) throws while the library loads, which terminates the process; here it becomes a Python
// RuntimeError and snnkern carries on without the extension, saying why. The CPU kernels run the same
// per-neuron functions: CI (no GPU) checks them against the reference.
void register_kernels() {
  static std::vector<std::unique_ptr<torch::Library>> libraries;  // kept: a Library deregisters when destroyed
  if (!libraries.empty()) return;
  try {
    for (const c10::DispatchKey key : {c10::DispatchKey::CUDA, c10::DispatchKey::CPU}) {
      auto lib = std::make_unique<torch::Library>(torch::Library::IMPL, "snnkern", key, __FILE__, __LINE__);
      lib->impl("lif_fwd_native", TORCH_FN(lif_fwd_native));
      lib->impl("lif_bwd_native", TORCH_FN(lif_bwd_native));
      lib->impl("pack_spikes_native", TORCH_FN(pack_spikes_native));
      lib->impl("unpack_spikes_native", TORCH_FN(unpack_spikes_native));
      libraries.push_back(std::move(lib));
    }
  } catch (const c10::Error& e) {
    libraries.clear();  // nothing half-registered
    throw std::runtime_error(e.what_without_backtrace());
  }
}

}  // namespace snnkern

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.doc() = "snnkern C++/CUDA backend: ops registered under torch.ops.snnkern.*_native";
  module.def("register_kernels", &snnkern::register_kernels,
             "register the ops' CUDA and CPU kernels (once); RuntimeError if a signature differs from the schema");
  module.def("last_forward_vec", [] { return snnkern::last_forward_vec.load(std::memory_order_relaxed); },
             "neurons a thread of the last lif_fwd_native call (8, 4 or 1): which kernel its alignment chose");
}
