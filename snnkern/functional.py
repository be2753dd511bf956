"""Functional API: multi-step spiking neurons over a whole sequence in one call."""
from __future__ import annotations

import functools

import torch

from . import _checks
from ._dispatch import select_backend
from .ops.lif import RESET_CODES, LifSpec, lif_apply, lif_reference
from .ops.surrogate import resolve_surrogate
from .functional_spikes import pack_spikes, spike_linear, unpack_spikes  # noqa: F401  (re-exported)

CONVENTIONS = ("snntorch", "spikingjelly")
RESETS = ("subtract", "zero", "hard", "none")
# int32: bit-packed along the last dim, 32 spikes a word (the pack_spikes layout)
SPIKE_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.bool, torch.uint8, torch.int32)


def lif(
    x_seq: torch.Tensor,
    v0: torch.Tensor | None = None,
    *,
    beta=None,
    tau=None,
    threshold=1.0,
    reset: str = "subtract",
    v_reset: float = 0.0,
    convention: str = "snntorch",
    decay_input: bool | None = None,
    detach_reset: bool | None = None,
    surrogate: str = "atan",
    alpha: float | None = None,
    spike_dtype: torch.dtype | None = None,
    return_membrane: bool = False,
    check_finite: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, ...]:
    r"""Leaky integrate-and-fire over all ``T`` steps of ``x_seq`` (shape ``[T, *]``) in one call.

    Returns ``(spikes, v_last)``: spikes of shape ``[T, *]`` (dtype of ``x_seq`` unless
    ``spike_dtype``), and the final membrane state of shape ``[*]`` in float32 (float64 for float64
    input), ready to pass back as ``v0`` for the next chunk of a sequence.

    Decay: ``beta`` (default 0.9), or ``tau`` with ``beta = 1 - 1/tau`` (SpikingJelly).  ``beta`` and
    ``threshold`` may be floats or tensors broadcastable to ``x_seq.shape[1:]`` (per neuron); tensors
    that require grad receive gradients (snnTorch ``learn_beta``/``learn_threshold``; for
    SpikingJelly's ``ParametricLIFNode`` pass ``beta = sigmoid_decay(w)``, i.e. ``1 - w.sigmoid()`` marked
    in range, so no value check (a device sync) runs on it each call).  ``k = 1 - beta`` when
    ``decay_input`` else ``k = 1``; ``V_r = v_reset`` for ``reset="hard"``, 0 otherwise.

    ``convention="snntorch"`` (``snntorch.Leaky``, reset_delay=True), with ``b = clamp(beta, 0, 1)``::

        R[t] = (U[t-1] > thr)                          detached, from the previous membrane
        U[t] = b*U[t-1] + k*X[t] - R[t]*thr            reset="subtract"
        U[t] = b*((1-R[t])*U[t-1] + R[t]*V_r) + k*X[t] + (1-b)*V_r   reset="zero" (V_r = 0) / "hard"
        U[t] = b*U[t-1] + k*X[t]                       reset="none"
        S[t] = (U[t] > thr)                            strict
        v_last = U[T-1]                                the membrane before its (delayed) reset
        U[-1] = v0, or 0 when v0 is None

    ``convention="spikingjelly"`` (``LIFNode``/``IFNode``/``ParametricLIFNode``, same-step reset)::

        H[t] = b*V[t-1] + k*X[t] + (1-b)*V_r           = V + (X - (V - V_r))/tau with decay_input
        S[t] = (H[t] - thr >= 0)
        V[t] = H[t] - S[t]*thr                         reset="subtract" (SpikingJelly v_reset=None)
        V[t] = (1-S[t])*H[t] + S[t]*V_r                reset="hard" (or "zero": V_r = 0)
        V[t] = H[t]                                    reset="none"
        v_last = V[T-1]                                after reset; V[-1] = v0, or V_r / 0 when None

    The reset term is detached from the gradient when ``detach_reset=True`` (SpikingJelly default
    False; snnTorch always detaches).  ``decay_input`` defaults to True for spikingjelly (its LIFNode
    default) and False for snntorch.

    Spikes are Heaviside steps forward; backward uses the surrogate derivative ``surrogate``
    (``atan``, ``sigmoid``, ``fast_sigmoid``, ``triangle``, ``rectangle``, ``straight_through``,
    ``snntorch_triangular``; see ``snnkern.ops.surrogate.SURROGATES``) with parameter ``alpha``
    (None: its default).

    ``spike_dtype=torch.bool`` or ``torch.uint8`` stores spikes in 1 byte for inference (no gradient);
    ``torch.int32`` bit-packs them along the last dim as ``pack_spikes`` does (``[T, ..., ceil(K/32)]``,
    1 bit a spike, written by the kernel itself when K is a multiple of 32), ready for
    ``spike_linear`` / ``SpikeLinear`` (inference, no gradient).

    ``return_membrane=True`` also returns the membrane after every step, ``[T, *]`` fp32, as the third
    output (snnTorch's per-step ``mem``: ``U[t]``; SpikingJelly's ``v_seq``: ``V[t]``), differentiable.

    NaN/inf policy: values propagate as IEEE arithmetic does, and a NaN membrane never spikes (both
    comparisons are false for NaN) — identically on every backend.  ``check_finite=True`` instead
    raises ValueError when ``x_seq`` holds NaN or inf (costs a device sync).

    ``backend``: ``"auto"`` (Triton kernels for CUDA tensors, the PyTorch reference otherwise),
    ``"triton"``, ``"cuda"`` (the compiled C++/CUDA extension) or ``"torch"``;
    ``snnkern.last_backend("lif")`` tells which one ran.
    """
    _checks.check_sequence(x_seq)
    _checks.check_state(v0, x_seq)
    return lif_run(x_seq, v0, beta, tau, threshold, check_finite, backend,
                   lif_spec(convention, spec_value(beta), spec_value(tau), spec_value(threshold), reset, v_reset, decay_input,
                            detach_reset, surrogate, alpha, spike_dtype or x_seq.dtype, return_membrane))


def if_(
    x_seq: torch.Tensor,
    v0: torch.Tensor | None = None,
    *,
    threshold=1.0,
    reset: str = "subtract",
    v_reset: float = 0.0,
    convention: str = "snntorch",
    detach_reset: bool | None = None,
    surrogate: str = "atan",
    alpha: float | None = None,
    spike_dtype: torch.dtype | None = None,
    return_membrane: bool = False,
    check_finite: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, ...]:
    """Integrate-and-fire: ``lif`` with no leak (``beta = 1``, the input is not scaled).

    ``convention="spikingjelly", reset="subtract"`` is the soft-reset IF neuron of ANN->SNN
    conversion; ``reset="hard"`` is SpikingJelly's ``IFNode`` default. See ``lif`` for the equations.
    """
    _checks.check_sequence(x_seq)
    _checks.check_state(v0, x_seq)
    return lif_run(x_seq, v0, None, None, threshold, check_finite, backend,
                   if_spec(convention, spec_value(threshold), reset, v_reset, detach_reset, surrogate, alpha,
                           spike_dtype or x_seq.dtype, return_membrane))


class _TensorValued:
    """The type of TENSOR. Tested with isinstance, not `is`: under torch.compile(dynamic=True) a float option
    is a SymFloat, and torch 2.11's dynamo cannot compare one with a plain object by identity (it raised
    NotImplementedError: ObjectVariable() where 2.14 traces it)."""

    def __repr__(self):
        return "TENSOR"


TENSOR = _TensorValued()  # stands for a tensor-valued beta/tau/threshold in the cached spec's key


def spec_value(value):
    """A beta / tau / threshold as the cached spec takes it: tensors become TENSOR (their values stay out)."""
    return TENSOR if isinstance(value, torch.Tensor) else value


def _cached(fn):
    """functools.lru_cache that also takes unhashable arguments (then uncached, so that fn's own
    check names the bad argument)."""
    cached = functools.lru_cache(maxsize=512, typed=True)(fn)

    @functools.wraps(fn)
    def call(*args):
        if torch.compiler.is_compiling():  # traced once per graph: the cache would only hide it from dynamo
            return fn(*args)
        try:
            return cached(*args)
        except TypeError:
            return fn(*args)  # an unhashable argument: fn raises the named error (or works uncached)

    call.cache_clear = cached.cache_clear
    return call


@_cached
def lif_spec(convention, beta, tau, threshold, reset, v_reset, decay_input, detach_reset, surrogate, alpha,
             spike_dtype, return_membrane) -> LifSpec:
    """Validate the options of a ``lif`` call and resolve them into a LifSpec (cached: a layer called
    again with the same options pays one dictionary lookup). ``TENSOR`` marks a tensor-valued beta /
    tau / threshold, whose values stay out of the spec."""
    convention = _checks.check_choice(convention, "convention", CONVENTIONS)
    snntorch_style = convention == "snntorch"
    if beta is not None and tau is not None:
        raise ValueError("pass either beta or tau, not both")
    if isinstance(tau, _TensorValued) or isinstance(beta, _TensorValued):
        beta_value = 0.0
    elif tau is not None:
        beta_value = 1.0 - 1.0 / _checks.check_number(tau, "tau", low=1.0)
    elif beta is None:
        beta_value = 0.9
    elif snntorch_style:  # snnTorch's Leaky clamps beta to [0, 1]
        beta_value = min(max(_checks.check_number(beta, "beta"), 0.0), 1.0)
    else:
        beta_value = _checks.check_number(beta, "beta", low=0.0, high=1.0)
    return _spec(convention, beta_value, threshold, reset, v_reset, decay_input, detach_reset, surrogate, alpha,
                 spike_dtype, return_membrane)


@_cached
def if_spec(convention, threshold, reset, v_reset, detach_reset, surrogate, alpha, spike_dtype,
            return_membrane) -> LifSpec:
    """``lif_spec`` of the IF neuron: no leak (beta = 1), the input not scaled."""
    convention = _checks.check_choice(convention, "convention", CONVENTIONS)
    return _spec(convention, 1.0, threshold, reset, v_reset, False, detach_reset, surrogate, alpha, spike_dtype,
                 return_membrane)


def _spec(convention, beta_value, threshold, reset, v_reset, decay_input, detach_reset, surrogate, alpha,
          spike_dtype, return_membrane) -> LifSpec:
    snntorch_style = convention == "snntorch"
    reset = _checks.check_choice(reset, "reset", RESETS)
    v_reset = _checks.check_number(v_reset, "v_reset")
    if reset == "zero":
        if v_reset != 0.0:
            raise ValueError(f"reset='zero' resets to 0; got v_reset={v_reset} (use reset='hard')")
        reset = "hard"
    threshold_value = (0.0 if isinstance(threshold, _TensorValued)
                       else _checks.check_number(threshold, "threshold", low=0.0, low_open=True))
    decay_input = (not snntorch_style) if decay_input is None else _checks.check_flag(decay_input, "decay_input")
    if detach_reset is None:
        detach_reset = snntorch_style
    elif _checks.check_flag(detach_reset, "detach_reset") is False and snntorch_style:
        raise ValueError("detach_reset=False is not available with convention='snntorch' (snnTorch always "
                         "detaches its reset); use convention='spikingjelly'")
    surrogate_code, alpha = resolve_surrogate(surrogate, alpha)
    if spike_dtype not in SPIKE_DTYPES:
        raise TypeError(f"spike_dtype must be one of {SPIKE_DTYPES}, got {spike_dtype!r}")
    return_membrane = _checks.check_flag(return_membrane, "return_membrane")
    v_init = v_reset if (reset == "hard" and not snntorch_style) else 0.0
    return LifSpec(snntorch_style, RESET_CODES[reset], v_reset, v_init, decay_input, detach_reset, surrogate_code,
                   alpha, beta_value, threshold_value, spike_dtype, return_membrane)


def sigmoid_decay(w: torch.Tensor) -> torch.Tensor:
    """``beta = 1 - sigmoid(w)``: the decay of a parametric LIF (Fang et al. 2021, ``1/tau = sigmoid(w)``;
    ``PLIF``, SpikingJelly's ``ParametricLIFNode``), derived every call (a value kept between calls would
    have to notice every change of ``w``, and fused optimizers and ``.data`` writes leave its version
    counter alone). Marked as in range by construction, so that ``lif_run`` does not check its values:
    a fresh tensor's check is a device sync on every call (a NaN ``w`` follows the NaN policy)."""
    return _checks.in_range_by_construction(1.0 - w.sigmoid())


def lif_run(x_seq, v0, beta, tau, threshold, check_finite, backend, spec: LifSpec):
    """Run a LIF/IF call whose options are resolved into ``spec``: check the tensors (the per-call part),
    choose the backend, launch. ``beta`` / ``tau`` / ``threshold`` matter only where tensor-valued;
    ``x_seq`` and ``v0`` have passed ``_checks.check_sequence`` / ``check_state`` (or the module's state check)."""
    beta_t = thr_t = None
    if isinstance(tau, torch.Tensor):
        _checks.check_param_tensor(tau, x_seq, "tau")
        _checks.check_param_values(tau, "tau", low=1.0)
        beta_t = 1.0 - 1.0 / tau
    elif isinstance(beta, torch.Tensor):
        _checks.check_param_tensor(beta, x_seq, "beta")
        if spec.delayed:  # snnTorch's Leaky clamps beta to [0, 1]: any finite value is valid
            _checks.check_param_values(beta, "beta")
            beta_t = beta.clamp(0.0, 1.0)
        else:
            _checks.check_param_values(beta, "beta", low=0.0, high=1.0)
            beta_t = beta
    if isinstance(threshold, torch.Tensor):
        _checks.check_param_tensor(threshold, x_seq, "threshold")
        _checks.check_param_values(threshold, "threshold", low=0.0, low_open=True)
        thr_t = threshold
    needs_grad = torch.is_grad_enabled() and (
        x_seq.requires_grad or (v0 is not None and v0.requires_grad) or (beta_t is not None and beta_t.requires_grad)
        or (thr_t is not None and thr_t.requires_grad))
    if needs_grad and not spec.spike_dtype.is_floating_point:
        raise ValueError(f"spike_dtype={spec.spike_dtype} carries no gradient; use it under torch.no_grad() "
                         "or with inputs that do not require grad")
    if check_finite and not bool(torch.isfinite(x_seq).all()):
        raise ValueError("x_seq contains NaN or inf (check_finite=True)")
    backend = select_backend("lif", backend, x_seq)
    if backend == "torch":
        return lif_reference(x_seq, v0, beta_t, thr_t, spec)
    spikes, v_last, v_seq, _ = lif_apply(x_seq, v0, beta_t, thr_t, spec, backend, needs_grad)
    return (spikes, v_last, v_seq) if spec.return_membrane else (spikes, v_last)
