"""Argument checks shared by the functional API and the modules: every message names the argument."""
from __future__ import annotations

import numbers

import torch

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def check_sequence(x, name: str = "x_seq") -> None:
    """A [T, *] floating tensor with T >= 1 and at least one trailing dim."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, bfloat16, float16 or float64, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape [T, *neurons] (at least 2 dims), got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} needs at least one time step (T >= 1), got shape {tuple(x.shape)}")


def check_state(v, x: torch.Tensor, name: str = "v0") -> None:
    """None, or a floating tensor of shape x.shape[1:] on x's device."""
    if v is None:
        return
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(v).__name__}")
    if v.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor, got {v.dtype}")
    if v.device != x.device:
        raise ValueError(f"{name} is on {v.device} but x_seq is on {x.device}")
    if v.shape != x.shape[1:]:
        raise ValueError(f"{name} must have shape {tuple(x.shape[1:])} (x_seq.shape[1:]), got {tuple(v.shape)}")


def _rule(low, high, low_open) -> str:
    lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
    hi = "" if high is None else f"<= {high}"
    return " and ".join(r for r in (lo, hi) if r)


def check_number(value, name: str, *, low=None, high=None, low_open=False) -> float:
    """A finite real number (Python or NumPy) within [low, high] (or (low, high] with low_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, numbers.Real)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    # finite <=> v - v == 0 (inf - inf and NaN give NaN): unlike math.isfinite, torch.compile can trace it
    # when the value is symbolic (dynamic=True). Plain `or`, no `|=`: torch 2.11's dynamo wrote `False |= le`
    # into the graph's code for the in-place form (a SyntaxError); the `if` guards on the value either way
    outside = (low is not None and (value <= low if low_open else value < low)) or (high is not None and value > high)
    if not (value - value == 0.0) or outside:
        rule = _rule(low, high, low_open)
        raise ValueError(f"{name} must be finite{' and ' + rule if rule else ''}; got {value}")
    return value


def check_param_values(p: torch.Tensor, name: str, *, low=None, high=None, low_open=False, learnable_too=False,
                       why: str = "") -> None:
    """The values of a tensor-valued beta / tau / threshold (or weight), as ``check_number`` checks a float.
    Checked once per version of the tensor (on a GPU that is one sync, then none until the tensor changes).
    Learnable tensors are skipped unless ``learnable_too``: they are the optimizer's to keep in range (the
    NaN/inf policy holds). ``why`` ends the message."""
    if (p.requires_grad and not learnable_too) or torch.compiler.is_compiling() or p.__dict__.get(IN_RANGE):
        return
    # an inference tensor (made under torch.inference_mode) has no version counter: checked every call
    inference = p.is_inference()
    key = (None if inference else p._version, p.data_ptr(), tuple(p.shape), low, high, low_open)  # data_ptr:
    # `p.data = x` keeps the version. A view made per call (e.g. a parameter's reshape) is a new object each
    # time: keep the record on its base, which lives on, or every call would check (and sync) again
    holder = p if p._base is None else p._base
    if not inference and getattr(holder, "_snnkern_checked", None) == key:
        return
    values = p.detach()
    ok = torch.isfinite(values)
    if low is not None:
        ok &= (values > low) if low_open else (values >= low)
    if high is not None:
        ok &= values <= high
    if not bool(ok.all()):
        rule = _rule(low, high, low_open)
        raise ValueError(f"{name} must hold finite values{' ' + rule if rule else ''}; got values in "
                         f"[{values.min().item():g}, {values.max().item():g}]"
                         + (" (or NaN)" if values.isnan().any() else "") + (f": {why}" if why else ""))
    if not inference:
        holder._snnkern_checked = key


IN_RANGE = "_snnkern_in_range"


def in_range_by_construction(p: torch.Tensor) -> torch.Tensor:
    """Mark ``p`` (returned) as within its parameter's range by construction, e.g. ``1 - sigmoid(w)`` for a
    decay: ``check_param_values`` then skips it (a per-call derived tensor would cost a sync every call)."""
    if not torch.compiler.is_compiling():  # a traced call checks nothing anyway
        p.__dict__[IN_RANGE] = True
    return p


def check_param_tensor(p: torch.Tensor, x: torch.Tensor, name: str) -> None:
    """A floating tensor broadcastable to the neuron shape x.shape[1:], on x's device."""
    if p.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor, got {p.dtype}")
    if p.device != x.device:
        raise ValueError(f"{name} is on {p.device} but x_seq is on {x.device}")
    target = x.shape[1:]
    # by hand: torch.broadcast_shapes costs ~20 us, a noticeable share of a single-step call
    fits = p.dim() <= len(target) and all(a == 1 or a == b for a, b in zip(reversed(p.shape), reversed(target)))
    if not fits:
        raise ValueError(
            f"{name} of shape {tuple(p.shape)} does not broadcast to the neuron shape {tuple(x.shape[1:])}"
        )


def check_choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")
    return value


def check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value
