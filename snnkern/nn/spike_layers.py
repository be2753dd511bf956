"""Drop-in ``nn.Linear`` / ``nn.Conv2d`` for spike inputs: event-driven where it pays, and the input
spikes saved for backward as bits (32x less than fp32).

Both take the same constructor arguments as their torch parents (plus the options below) and hold
the same parameters, so ``load_state_dict`` and optimizers work unchanged; ``from_linear`` /
``from_conv`` wrap an existing layer, sharing its parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..functional_spikes import (ALGORITHMS, AUTO_WITHOUT_RATE, _binary_and_rate, conv_gather_below, count_spikes,
                                 pack_spikes, spike_linear, spike_linear_run, unpack_spikes)


class SpikeLinear(nn.Linear):
    """``nn.Linear`` for binary spike input (``snnkern.functional.spike_linear``).

    ``algorithm="auto"`` picks per call (``auto_algorithm``) from the firing rate of the previous call,
    counted on the device and read without a sync (``last_rate``); ``"tiles"``, ``"gather"`` or
    ``"dense"`` fix it.  ``strict=True`` raises on non-binary input (otherwise it runs dense);
    ``assume_binary=True`` skips that check (a sync).
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None, *, algorithm="auto",
                 strict=False, assume_binary=False, backend="auto"):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.algorithm = _checks.check_choice(algorithm, "algorithm", ALGORITHMS)
        self.strict = _checks.check_flag(strict, "strict")
        self.assume_binary = _checks.check_flag(assume_binary, "assume_binary")
        self.backend = backend
        self._rate = RateTracker()

    @property
    def last_rate(self) -> float | None:
        """The firing rate of the input of a recent call (``algorithm="auto"`` only; None before any)."""
        return self._rate.latest()

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs) -> "SpikeLinear":
        """A SpikeLinear sharing ``linear``'s weight and bias (the same Parameter objects)."""
        new = cls(linear.in_features, linear.out_features, linear.bias is not None, device="meta", **kwargs)
        new.weight, new.bias = linear.weight, linear.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.algorithm != "auto" or torch.compiler.is_compiling():
            return spike_linear(x, self.weight, self.bias, strict=self.strict, assume_binary=self.assume_binary,
                                algorithm=self.algorithm, backend=self.backend)
        # "auto" decides on the previous call's firing rate, which arrives without a sync (the first call,
        # knowing none, takes the dense-rate choice)
        rate = self._rate.latest()
        return spike_linear_run(x, self.weight, self.bias, self.strict, self.assume_binary, "auto",
                                None, AUTO_WITHOUT_RATE if rate is None else rate, self.backend, self._rate.record)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", algorithm={self.algorithm!r}, backend={self.backend!r}"


class RateTracker:
    """A layer's input firing rate, carried from one call to the next without a host sync: the count is
    computed on the device, copied into pinned host memory without blocking, and read once its event has
    completed (until then the previous value stands)."""

    def __init__(self):
        self.value = None
        self._pending = None  # (host count, event or None, spikes counted)
        self._host = None  # pinned int64 scalar, reused

    def latest(self) -> float | None:
        if self._pending is not None:
            count, event, n = self._pending
            if event is None or event.query():
                self.value = int(count) / max(n, 1)
                self._pending = None
        return self.value

    def idle(self) -> bool:
        """No count on its way: a new one would be kept (else it is dropped: count only when idle)."""
        return self._pending is None

    def record(self, bits: torch.Tensor, k: int) -> None:
        """Count packed spikes ``bits`` (k spikes a row)."""
        if self._pending is None:  # else the previous count is still on its way: keep that one
            self.record_count(count_spikes(bits), (bits.numel() // max(bits.shape[-1], 1)) * k)

    def record_count(self, count: torch.Tensor, n: int) -> None:
        """``count`` spikes (an int64 scalar on the spikes' device) among ``n``."""
        if self._pending is not None:
            return
        if count.is_cuda:
            if self._host is None:
                self._host = torch.empty((), dtype=torch.int64, pin_memory=True)
            self._host.copy_(count, non_blocking=True)  # on count's device's current stream
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(count.device))  # that stream, also when another GPU is current
            self._pending = (self._host, event, n)
        else:
            self._pending = (count, None, n)


class _SpikeConvDense(torch.autograd.Function):
    """cuDNN convolution on spikes that saves the input as bits instead of the dense tensor."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.conf = (stride, padding, dilation, groups)
        ctx.x_shape, ctx.x_dtype, ctx.has_bias = x.shape, x.dtype, bias is not None
        bits = pack_spikes(x.detach().reshape(x.shape[0], -1), check=False)
        ctx.save_for_backward(bits, weight)
        return F.conv2d(x.to(weight.dtype), weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_y):
        bits, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_y = grad_y.to(weight.dtype)
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_x = torch.nn.grad.conv2d_input(ctx.x_shape, weight, grad_y, stride, padding, dilation, groups)
            grad_x = grad_x.to(ctx.x_dtype)
        if need_w:
            n = ctx.x_shape[1] * ctx.x_shape[2] * ctx.x_shape[3]
            x = unpack_spikes(bits, n, dtype=weight.dtype).reshape(ctx.x_shape)
            grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad_y, stride, padding, dilation, groups)
        if need_b and ctx.has_bias:
            grad_b = grad_y.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


class SpikeConv2d(nn.Conv2d):
    """``nn.Conv2d`` for binary spike input ``[B, C, H, W]``.

    ``algorithm="dense"`` (default for ``"auto"`` above the gather crossover): cuDNN forward, input
    saved as bits.  ``"tiles"``/``"gather"``: im2col (``F.unfold``) then the spike_linear kernels
    (groups=1, zero padding); these save the unfolded spikes as bits (kernel_size^2 times more bits).
    ``"auto"``: gather below ``conv_gather_below(weight dtype)``, else dense, on the rate the binary check
    measured, or with ``assume_binary=True`` on the previous call's rate (no sync).
    """

    def __init__(self, *args, algorithm="auto", strict=False, assume_binary=False, backend="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.algorithm = _checks.check_choice(algorithm, "algorithm", ALGORITHMS)
        self.strict = _checks.check_flag(strict, "strict")
        self.assume_binary = _checks.check_flag(assume_binary, "assume_binary")
        self.backend = backend
        self._rate = RateTracker()

    @property
    def last_rate(self) -> float | None:
        """The input firing rate of a recent ``assume_binary`` "auto" call (None before any)."""
        return self._rate.latest()

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, **kwargs) -> "SpikeConv2d":
        """A SpikeConv2d sharing ``conv``'s weight and bias (the same Parameter objects)."""
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                  conv.groups, conv.bias is not None, conv.padding_mode, device="meta", **kwargs)
        new.weight, new.bias = conv.weight, conv.bias
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise ValueError("SpikeConv2d expects spikes of shape [B, C, H, W]")
        algorithm, rate = self.algorithm, None
        if not self.assume_binary:
            binary, rate = _binary_and_rate(x)
            if not binary:
                if self.strict:
                    raise ValueError("x holds values other than 0 and 1 (strict=True)")
                return super().forward(x)
        if self.padding_mode != "zeros" or self.groups != 1 or isinstance(self.padding, str):
            algorithm = "dense"  # the unfold path covers plain zero-padded, ungrouped convolutions
        if algorithm == "auto":
            if rate is None:  # no binary check ran: decide on the previous call's rate, which needs no sync
                rate = self._rate.latest()
                if self._rate.idle():
                    self._rate.record_count((x != 0).sum(), x.numel())
                rate = AUTO_WITHOUT_RATE if rate is None else rate
            algorithm = "gather" if rate < conv_gather_below(self.weight.dtype) else "dense"
        if algorithm == "dense":
            return _SpikeConvDense.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                         self.groups)
        B, _, H, W = x.shape
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # [B, C*kh*kw, L]
        y = spike_linear(cols.transpose(1, 2), self.weight.reshape(self.out_channels, -1), self.bias,
                         assume_binary=True, algorithm=algorithm, backend=self.backend)  # [B, L, out]
        Ho = (H + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        Wo = (W + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        return y.transpose(1, 2).reshape(B, self.out_channels, Ho, Wo)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", algorithm={self.algorithm!r}, backend={self.backend!r}"
