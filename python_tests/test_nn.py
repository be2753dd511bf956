"""snnkern.nn: neuron modules, the multi-step containers, encoders and losses."""
import pytest
import torch
from torch import nn

import snnkern
from snnkern.functional import lif
from snnkern.nn import IF, LIF, PLIF, Multistep, SpikingSequential, ce_rate_loss, latency, mse_count_loss, rate
from snnkern.nn import detach_states, direct, predict, reset_states, spike_count

snntorch = pytest.importorskip("snntorch")
from snntorch import functional as snn_functional  # noqa: E402
from snntorch import spikegen  # noqa: E402
from snntorch import surrogate as snn_surrogate  # noqa: E402

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]


@pytest.fixture
def device(backend):
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


def seq(seed, shape, scale=1.0, shift=0.3):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale + shift


@pytest.mark.parametrize("backend", BACKENDS)
def test_lif_module_state_chunks_steps_and_reset(backend, device):
    x = seq(0, (12, 3, 8)).to(device)
    m = LIF(beta=0.8, backend=backend).to(device)
    whole = m(x)
    s_ref, v_ref = lif(x, beta=0.8, backend=backend)
    assert torch.equal(whole, s_ref) and torch.equal(m.v, v_ref)
    m.reset()
    chunks = torch.cat([m(x[:5]), m(x[5:])])  # state carries across calls
    assert torch.equal(chunks, whole)
    m.reset()
    steps = torch.stack([m.step(x[t]) for t in range(12)])  # single-step path
    assert torch.equal(steps, whole) and torch.equal(m.v, v_ref)
    m.reset()
    assert m.v is None
    if backend == "triton":
        assert m.last_backend == "triton" and "last ran: triton" in repr(m)


def test_detach_state_cuts_the_graph_between_chunks():
    m = LIF(beta=torch.tensor(0.8), learn_beta=True)
    x = seq(1, (6, 2, 4)).requires_grad_()
    m(x[:3])
    m.detach_state()
    m(x[3:]).sum().backward()
    assert x.grad[:3].abs().sum() == 0 and x.grad[3:].abs().sum() > 0
    assert isinstance(m.beta, nn.Parameter) and m.beta.grad is not None
    model = nn.Sequential(LIF(), IF())
    model(seq(2, (3, 2, 4)).requires_grad_())
    detach_states(model)
    assert not model[0].v.requires_grad
    reset_states(model)
    assert model[0].v is None and model[1].v is None


def test_module_repr_and_validation():
    text = repr(LIF(beta=0.7, learn_threshold=True, surrogate="sigmoid", alpha=5.0))
    for part in ("beta=0.7", "threshold=1 (learnable)", "surrogate=sigmoid(alpha=5)", "backend='auto'"):
        assert part in text
    assert "tau=2" in repr(PLIF()) and "IF(" in repr(IF())
    with pytest.raises(ValueError, match="surrogate"):
        LIF(surrogate="nope")
    with pytest.raises(ValueError, match="threshold"):
        IF(threshold=-1.0)
    with pytest.raises(ValueError, match="beta"):
        LIF(beta=1.5)
    with pytest.raises(ValueError, match="step_mode"):
        LIF(step_mode="x")
    with pytest.raises(ValueError, match="init_tau"):
        PLIF(init_tau=1.0)


def test_fixed_tensor_parameters_are_buffers():
    m = LIF(beta=torch.full((4,), 0.7), threshold=torch.ones(4))
    assert dict(m.named_buffers()).keys() == {"beta", "threshold"} and not list(m.parameters())
    m2 = LIF(beta=0.7, learn_beta=True)
    assert [n for n, _ in m2.named_parameters()] == ["beta"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_plif_matches_spikingjelly(backend, device):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    theirs = sj_neuron.ParametricLIFNode(init_tau=3.0, step_mode="m").to(device)
    ours = PLIF(init_tau=3.0, backend=backend).to(device)
    x = seq(3, (10, 2, 16), scale=1.5, shift=0.6).to(device)
    s1, s2 = theirs(x), ours(x)
    assert torch.equal(s1, s2) and 0.05 < s1.mean() < 0.95
    (s1 * x).sum().backward()
    (s2 * x).sum().backward()
    torch.testing.assert_close(ours.w.grad, theirs.w.grad, rtol=1e-5, atol=1e-6)


def test_store_v_seq_records_the_membrane():
    m = LIF(beta=0.9, store_v_seq=True)
    x = seq(4, (7, 2, 3))
    m(x)
    _, _, v_seq = lif(x, beta=0.9, return_membrane=True)
    assert torch.equal(m.v_seq, v_seq) and torch.equal(m.v_seq[-1], m.v)


class TutorialNet(nn.Module):
    """The snnTorch tutorial network with its Python time loop."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(28, 40), nn.Linear(40, 10)
        self.lif1 = snntorch.Leaky(beta=0.95)
        self.lif2 = snntorch.Leaky(beta=0.9, reset_mechanism="zero", spike_grad=snn_surrogate.fast_sigmoid(slope=25))

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk_rec = []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk_rec.append(spk2)
        return torch.stack(spk_rec)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spiking_sequential_equals_the_loop(backend, device):
    torch.manual_seed(0)
    loop_net = TutorialNet().to(device)
    fast = SpikingSequential(  # the same weights, the whole sequence per call
        loop_net.fc1, LIF(beta=0.95, backend=backend),
        loop_net.fc2, LIF(beta=0.9, reset="zero", surrogate="fast_sigmoid", alpha=25.0, backend=backend),
    )
    x = seq(5, (15, 4, 28), scale=1.0, shift=0.2).to(device)
    targets = torch.tensor([1, 3, 5, 7], device=device)
    grads = []
    for net in (loop_net, fast):
        net.zero_grad()
        reset_states(net)
        spk = net(x)
        mse_count_loss(spk, targets, correct_rate=0.8, incorrect_rate=0.2).backward()
        grads.append((spk.detach(), [p.grad.clone() for p in (loop_net.fc1.weight, loop_net.fc2.weight)]))
    assert torch.equal(grads[0][0], grads[1][0]) and grads[0][0].sum() > 0
    for a, b in zip(grads[1][1], grads[0][1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_multistep_and_sequential_errors():
    layer = nn.Linear(5, 3)
    x = seq(6, (4, 2, 5))
    assert torch.allclose(Multistep(layer)(x), torch.stack([layer(x[t]) for t in range(4)]), atol=1e-6)
    with pytest.raises(TypeError, match="snnkern.nn.LIF"):
        SpikingSequential(nn.Linear(5, 5), snntorch.Leaky(beta=0.9))(x)
    with pytest.raises(ValueError, match="step_mode"):
        SpikingSequential(nn.Linear(5, 5), LIF(step_mode="s"))(x)
    with pytest.raises(ValueError, match=r"\[T, B"):
        Multistep(layer)(torch.ones(5))


def test_rate_coding_matches_snntorch():
    data = torch.rand(6, 7, generator=torch.Generator().manual_seed(7))
    for gain, offset in [(1.0, 0.0), (0.5, 0.2)]:
        torch.manual_seed(11)
        theirs = spikegen.rate(data, num_steps=9, gain=gain, offset=offset)
        torch.manual_seed(11)
        ours = rate(data, 9, gain=gain, offset=offset)
        assert torch.equal(ours, theirs)
    assert torch.equal(direct(data, 3), data.expand(3, 6, 7))
    with pytest.raises(ValueError, match="num_steps"):
        rate(data, 0)
    with pytest.raises(TypeError, match="data"):
        rate(torch.ones(3, dtype=torch.long), 4)


@pytest.mark.parametrize("kw", [dict(), dict(tau=1.2, threshold=0.05), dict(normalize=True), dict(linear=True),
                                dict(linear=True, normalize=True), dict(clip=True, normalize=True)])
def test_latency_coding_matches_snntorch(kw):
    data = torch.rand(5, 8, generator=torch.Generator().manual_seed(8))
    theirs = spikegen.latency(data, num_steps=20, **kw)
    ours = latency(data, 20, **kw)
    assert torch.equal(ours, theirs)
    assert torch.equal(ours.sum(0), torch.ones_like(data) if not kw.get("clip") else (data >= 0.01).float())


def test_losses_match_snntorch_and_decoding():
    g = torch.Generator().manual_seed(9)
    spikes = (torch.rand(12, 6, 10, generator=g) > 0.6).float().requires_grad_()
    targets = torch.randint(0, 10, (6,), generator=g)
    theirs = snn_functional.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)(spikes, targets)
    ours = mse_count_loss(spikes, targets, correct_rate=0.8, incorrect_rate=0.2)
    torch.testing.assert_close(ours, theirs.reshape(ours.shape))
    torch.testing.assert_close(ce_rate_loss(spikes, targets), snn_functional.ce_rate_loss()(spikes, targets).reshape(()))
    assert torch.equal(spike_count(spikes), spikes.sum(0)) and torch.equal(predict(spikes), spikes.sum(0).argmax(-1))
    with pytest.raises(ValueError, match="targets"):
        mse_count_loss(spikes, targets.float())


def test_package_exports():
    assert snnkern.nn.LIF is LIF and callable(snnkern.swap)
