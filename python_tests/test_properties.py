"""Property-based tests (hypothesis): every backend against an oracle written from the docstrings.

The oracle is plain Python on scalars, one neuron at a time, following the equations in
``snnkern.functional.lif``'s docstring and ``pack_spikes``' layout, sharing no code with the package.
Inputs are drawn on a dyadic grid (x, v0 multiples of 1/16; beta in {1/2, 3/4, 1}; thresholds and
reset values with few bits; T <= 6) so every intermediate is exact in float32: any evaluation order
gives the same bits, so spikes and membranes are compared exactly — threshold ties included.

Profiles: ``ci`` (default; bounded, about a minute under the Triton interpreter) and ``deep``
(``SNNKERN_HYPOTHESIS_PROFILE=deep``: 5,000 examples per test and backend).
"""
import os

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import snnkern  # noqa: E402
from snnkern.functional import if_, lif  # noqa: E402

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("deep", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("SNNKERN_HYPOTHESIS_PROFILE", "ci"))

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton),
            pytest.param("cuda", marks=pytest.mark.cuda_ext)]


def _device(backend):
    return "cuda" if backend != "torch" and torch.cuda.is_available() else "cpu"


# ---- the oracle ---------------------------------------------------------------------------------------


def oracle_lif(xs, v0, beta, thr, reset, v_reset, convention, decay_input):
    """One neuron: xs the inputs over T, v0 the initial state or None. Returns (spikes, states, v_last)."""
    k = (1.0 - beta) if decay_input else 1.0
    vr = v_reset if reset == "hard" else 0.0
    spikes, states = [], []
    if convention == "snntorch":
        u = 0.0 if v0 is None else v0
        for x in xs:
            r = 1.0 if u > thr else 0.0
            if reset == "subtract":
                u = beta * u + k * x - r * thr
            elif reset == "hard":
                u = beta * ((1 - r) * u + r * vr) + k * x + (1 - beta) * vr
            else:
                u = beta * u + k * x
            spikes.append(1.0 if u > thr else 0.0)
            states.append(u)
        return spikes, states, u
    v = (vr if reset == "hard" else 0.0) if v0 is None else v0
    for x in xs:
        h = beta * v + k * x + (1 - beta) * vr
        s = 1.0 if h - thr >= 0 else 0.0
        if reset == "subtract":
            v = h - s * thr
        elif reset == "hard":
            v = (1 - s) * h + s * vr
        else:
            v = h
        spikes.append(s)
        states.append(v)
    return spikes, states, v


def oracle_pack(bits):
    """One row of 0/1 -> int32 words, bit j of word w = bits[32w + j]."""
    words = []
    for w in range(0, len(bits), 32):
        value = sum(1 << j for j, b in enumerate(bits[w:w + 32]) if b)
        words.append(value - (1 << 32) if value >= 1 << 31 else value)
    return words


# ---- strategies ---------------------------------------------------------------------------------------

grid = st.integers(-32, 48).map(lambda i: i / 16.0)


@st.composite
def lif_cases(draw):
    T = draw(st.integers(1, 6))
    lead = draw(st.sampled_from([(), (2,), (3,)]))
    n = draw(st.integers(1, 40))
    shape = (*lead, n)
    count = T * (lead[0] if lead else 1) * n
    xs = draw(st.lists(grid, min_size=count, max_size=count))
    case = dict(
        T=T, shape=shape, xs=xs,
        v0=draw(st.one_of(st.none(), st.lists(grid, min_size=count // T, max_size=count // T))),
        beta=draw(st.sampled_from([0.5, 0.75, 1.0])),
        thr=draw(st.sampled_from([0.5, 1.0, 1.5])),
        convention=draw(st.sampled_from(["snntorch", "spikingjelly"])),
        reset=draw(st.sampled_from(["subtract", "hard", "none"])),
        v_reset=draw(st.sampled_from([0.0, -0.5, 0.25])),
        dtype=draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float16])),
        transposed=draw(st.booleans()),  # a non-contiguous x_seq of the same values
        neuron=draw(st.sampled_from(["lif", "if"])),
    )
    if case["reset"] != "hard":
        case["v_reset"] = 0.0
    case["decay_input"] = case["convention"] == "spikingjelly" and case["neuron"] == "lif"
    return case


@pytest.mark.parametrize("backend", BACKENDS)
@given(case=lif_cases())
def test_lif_matches_the_oracle(backend, case):
    T, shape = case["T"], case["shape"]
    d = _device(backend)
    x = torch.tensor(case["xs"], dtype=torch.float32).reshape(T, *shape)
    if case["transposed"]:
        x = x.transpose(0, -1).contiguous().transpose(0, -1)  # same values, other strides
    x = x.to(d, case["dtype"])
    v0 = None if case["v0"] is None else torch.tensor(case["v0"]).reshape(shape).to(d)
    beta = 1.0 if case["neuron"] == "if" else case["beta"]
    kw = dict(threshold=case["thr"], reset=case["reset"], v_reset=case["v_reset"], convention=case["convention"],
              return_membrane=True, backend=backend)
    if case["neuron"] == "if":
        spikes, v_last, v_seq = if_(x, v0, **kw)
    else:
        spikes, v_last, v_seq = lif(x, v0, beta=beta, decay_input=case["decay_input"], **kw)
    xs = x.float().cpu().reshape(T, -1)
    v0s = None if v0 is None else v0.cpu().reshape(-1)
    for i in range(xs.shape[1]):
        s, states, last = oracle_lif(xs[:, i].tolist(), None if v0s is None else float(v0s[i]), beta, case["thr"],
                                     case["reset"], case["v_reset"], case["convention"], case["decay_input"])
        assert spikes.reshape(T, -1)[:, i].float().cpu().tolist() == s, f"spikes of neuron {i}"
        assert v_seq.reshape(T, -1)[:, i].cpu().tolist() == states, f"membranes of neuron {i}"
        assert float(v_last.reshape(-1)[i]) == last


@pytest.mark.parametrize("backend", BACKENDS)
@given(rows=st.integers(0, 4), k=st.integers(0, 100), data=st.data(),
       dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.bool, torch.uint8]))
def test_pack_matches_the_oracle_and_round_trips(backend, rows, k, data, dtype):
    bits = [data.draw(st.lists(st.integers(0, 1), min_size=k, max_size=k)) for _ in range(rows)]
    s = torch.tensor(bits, dtype=torch.float32).reshape(rows, k).to(_device(backend), dtype)
    words = snnkern.pack_spikes(s, backend=backend)
    assert words.cpu().tolist() == [oracle_pack(b) for b in bits]
    assert torch.equal(snnkern.unpack_spikes(words, k, dtype=dtype, backend=backend), s)


LINEAR_BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]


@pytest.mark.parametrize("backend", LINEAR_BACKENDS)
@given(m=st.integers(1, 20), k=st.integers(1, 70), n=st.integers(1, 24), data=st.data(),
       algorithm=st.sampled_from(["auto", "tiles", "gather", "dense"]),
       wdtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]), packed=st.booleans(),
       bias=st.booleans())
def test_spike_linear_matches_the_oracle(backend, m, k, n, data, algorithm, wdtype, packed, bias):
    """Weights are small multiples of 1/8: every sum is exact, so the result is compared exactly."""
    bits = [data.draw(st.lists(st.integers(0, 1), min_size=k, max_size=k)) for _ in range(m)]
    w = [data.draw(st.lists(st.integers(-16, 16), min_size=k, max_size=k)) for _ in range(n)]
    b = data.draw(st.lists(st.integers(-16, 16), min_size=n, max_size=n)) if bias else None
    expected = [[sum(bits[i][j] * w[o][j] for j in range(k)) / 8.0 + (b[o] / 8.0 if bias else 0.0)
                 for o in range(n)] for i in range(m)]
    d = _device(backend)
    s = torch.tensor(bits, dtype=torch.float32, device=d)
    wt = (torch.tensor(w, dtype=torch.float32) / 8.0).to(d, wdtype)
    bt = None if b is None else (torch.tensor(b, dtype=torch.float32) / 8.0).to(d, wdtype)
    x = snnkern.pack_spikes(s, backend=backend) if packed else s
    y = snnkern.spike_linear(x, wt, bt, algorithm=algorithm, backend=backend)
    assert y.dtype == wdtype
    # the exact sums fit every weight dtype's mantissa except fp16/bf16 above 2^8 / 2^11 in magnitude
    torch.testing.assert_close(y.float().cpu(), torch.tensor(expected, dtype=torch.float32).to(wdtype).float(),
                               rtol=0, atol=0)
