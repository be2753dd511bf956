"""Surrogate gradients: forward is a Heaviside step, backward is a smooth stand-in derivative.

Every surrogate exists twice, written as the same expression in the same order:
``_surrogate_grad`` (Triton, used inside the fused kernels) and ``surrogate_grad_reference``
(plain PyTorch, used by the reference and as the test oracle).  ``x`` is always the distance to
threshold, ``h - threshold``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from ._triton import tl, triton


@dataclass(frozen=True)
class SurrogateSpec:
    code: int  # compile-time id passed to the kernels
    default_alpha: float | None  # None: the surrogate has no parameter
    formula: str  # d spike / d x, for docs and error messages


# alpha meaning per surrogate (defaults follow the library the formula comes from):
#   atan: SpikingJelly/snnTorch ATan alpha=2;  sigmoid: SpikingJelly alpha=4 (snnTorch slope=25);
#   fast_sigmoid: SuperSpike / snnTorch slope k=25;  triangle: SpikingJelly PiecewiseQuadratic alpha=1;
#   rectangle: window of width 1/alpha and height alpha;  straight_through: snnTorch STE, no parameter;
#   snntorch_triangular: snnTorch's ``triangular`` exactly as it computes it, +alpha below threshold and
#   -alpha at/above it (alpha = its ``threshold`` argument), so swapped models keep their gradients.
SURROGATES: dict[str, SurrogateSpec] = {
    "atan": SurrogateSpec(0, 2.0, "alpha/2 / (1 + (pi/2*alpha*x)^2)"),
    "sigmoid": SurrogateSpec(1, 4.0, "alpha * sigmoid(alpha*x) * (1 - sigmoid(alpha*x))"),
    "fast_sigmoid": SurrogateSpec(2, 25.0, "1 / (alpha*|x| + 1)^2"),
    "triangle": SurrogateSpec(3, 1.0, "max(0, alpha - alpha^2*|x|)"),
    "rectangle": SurrogateSpec(4, 1.0, "alpha if |x| < 1/(2*alpha) else 0"),
    "straight_through": SurrogateSpec(5, None, "1"),
    "snntorch_triangular": SurrogateSpec(6, 1.0, "alpha if x < 0 else -alpha"),
}


def resolve_surrogate(surrogate, alpha) -> tuple[int, float]:
    """Validate a surrogate name and its parameter; return (kernel code, alpha as float)."""
    if not isinstance(surrogate, str):
        raise TypeError(f"surrogate must be a str, one of {sorted(SURROGATES)}; got {type(surrogate).__name__}")
    spec = SURROGATES.get(surrogate)
    if spec is None:
        raise ValueError(f"unknown surrogate {surrogate!r}; valid surrogates: {', '.join(sorted(SURROGATES))}")
    if spec.default_alpha is None:
        if alpha is not None:
            raise ValueError(f"surrogate {surrogate!r} takes no alpha; got alpha={alpha!r}")
        return spec.code, 0.0
    if alpha is None:
        return spec.code, spec.default_alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a float, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite positive number for surrogate {surrogate!r}; got {alpha}")
    return spec.code, alpha


@triton.jit
def _surrogate_grad(x, alpha, KIND: tl.constexpr):
    """d spike / d x at x = h - threshold, in fp32."""
    if KIND == 0:  # atan
        y = (1.5707963267948966 * alpha) * x
        g = (0.5 * alpha) / (1.0 + y * y)
    elif KIND == 1:  # sigmoid
        sg = 1.0 / (1.0 + tl.exp(-(alpha * x)))
        g = alpha * sg * (1.0 - sg)
    elif KIND == 2:  # fast_sigmoid
        d = alpha * tl.abs(x) + 1.0
        g = 1.0 / (d * d)
    elif KIND == 3:  # triangle
        g = alpha - alpha * alpha * tl.abs(x)
        g = tl.where(g < 0.0, 0.0, g)  # not tl.maximum: a NaN must stay NaN, as torch.clamp_min keeps it
    elif KIND == 4:  # rectangle
        g = tl.where(tl.abs(x) < 0.5 / alpha, alpha, 0.0)
    elif KIND == 5:  # straight_through
        g = tl.full(x.shape, 1.0, tl.float32)
    else:  # snntorch_triangular
        g = tl.where(x >= 0, -alpha, alpha)
    return g


def surrogate_grad_reference(x: torch.Tensor, alpha: float, code: int) -> torch.Tensor:
    """PyTorch twin of ``_surrogate_grad`` (same expression, same order)."""
    if code == 0:
        y = (math.pi / 2 * alpha) * x
        return (0.5 * alpha) / (1.0 + y * y)
    if code == 1:
        sg = torch.sigmoid(alpha * x)
        return alpha * sg * (1.0 - sg)
    if code == 2:
        d = alpha * x.abs() + 1.0
        return 1.0 / (d * d)
    if code == 3:
        return (alpha - alpha * alpha * x.abs()).clamp_min(0.0)
    if code == 4:
        return (x.abs() < 0.5 / alpha).to(x.dtype) * alpha
    if code == 5:
        return torch.ones_like(x)
    return torch.where(x >= 0, -1.0, 1.0).to(x.dtype) * alpha


class SpikeFn(torch.autograd.Function):
    """Heaviside spike with a surrogate derivative; ``strict`` picks ``x > 0`` (snnTorch) or ``x >= 0``
    (SpikingJelly).  Used by the reference implementation.  Written with ``setup_context`` and a
    generated vmap rule, so ``torch.func.grad`` / ``vmap`` / ``jacrev`` work on the reference path."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, alpha: float, code: int, strict: bool):
        return (x > 0).to(x.dtype) if strict else (x >= 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, alpha, code, _strict = inputs
        ctx.save_for_backward(x)
        ctx.alpha, ctx.code = alpha, code

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * surrogate_grad_reference(x, ctx.alpha, ctx.code), None, None, None
