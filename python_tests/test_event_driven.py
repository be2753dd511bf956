"""snnkern.nn.event_driven: spike-fed Linear/Conv2d become SpikeLinear/SpikeConv2d, results unchanged."""
import copy

import pytest
import torch
from torch import nn

from snnkern.experiments import PRESETS, build_model
from snnkern.nn import LIF, SpikeConv2d, SpikeLinear, SpikingSequential, event_driven

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]


def dev(backend):
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


def same_spikes(a, b) -> bool:
    """Spike outputs of two summation orders: equal on CPU (the interpreter's kernels and the reference
    add alike); on a GPU a membrane sitting on the threshold may flip a rare spike."""
    if a.is_cuda:
        flipped = (a != b).float().mean().item()
        assert flipped <= 0.002, f"{flipped:.2%} of the spikes differ"
        return flipped == 0
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    return True


def same_logits(a, b):
    """Converted-SNN outputs (step-averaged logits): equal up to rounding on CPU; on a GPU a flipped
    hidden spike moves a few logits by a weight / T."""
    if a.is_cuda:
        moved = ((a - b).abs() > 1e-3).float().mean().item()
        assert moved <= 0.1, f"{moved:.1%} of the logits moved"
    else:
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_swaps_exactly_the_spike_fed_layers():
    model = SpikingSequential(
        nn.Conv2d(1, 4, 3, padding=1), LIF(), nn.MaxPool2d(2),  # 0: raw input, stays
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), LIF(),  # 3: after max-pooled spikes: swapped
        nn.AvgPool2d(2), nn.Conv2d(4, 4, 1),  # 7: after average pooling: stays
        LIF(), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 4, 8),  # 11: after dropout: swapped, checked
        nn.Linear(8, 8), LIF(), nn.Identity(), nn.Linear(8, 3))  # 12 stays; 15 swapped
    layers = copy.deepcopy(list(model))
    assert event_driven(model) == ["3", "11", "15"]
    assert isinstance(model[3], SpikeConv2d) and model[3].assume_binary
    assert isinstance(model[11], SpikeLinear) and not model[11].assume_binary  # dropout scales in training
    assert isinstance(model[15], SpikeLinear) and model[15].assume_binary
    for i in (0, 7, 12):
        assert type(model[i]) is type(layers[i])
    assert event_driven(model) == []  # already swapped: nothing left to do


def test_packed_only_into_a_spike_linear_right_after():
    model = SpikingSequential(nn.Linear(8, 64), LIF(), nn.Linear(64, 64), LIF(), nn.Dropout(0.1), nn.Linear(64, 4))
    assert event_driven(model) == ["2", "5"]
    assert model[1].packed_output and not model[3].packed_output  # model[3] feeds a Dropout
    unpacked = SpikingSequential(nn.Linear(8, 64), LIF(), nn.Linear(64, 64))
    event_driven(unpacked, packed=False)
    assert not unpacked[1].packed_output


def test_nested_containers_and_names():
    net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(LIF(step_mode="s"), nn.Linear(4, 2)))
    assert event_driven(net) == ["1.1"]
    with pytest.raises(TypeError, match="model"):
        event_driven("not a model")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", ["luo2024-mlp", "niederlechner2019-cnn"])
def test_preset_snn_gives_the_same_results(backend, preset):
    d = dev(backend)
    p = PRESETS[preset]
    torch.manual_seed(0)
    ref = build_model(p, (1, 28, 28), 10, spiking=True).to(d)
    ours = copy.deepcopy(ref)
    swapped = event_driven(ours, backend=backend)
    assert swapped and ours.state_dict().keys() == ref.state_dict().keys()
    x = torch.rand(4, 2, 1, 28, 28, device=d) * 4  # [T, B, ...] direct input, strong enough to spike
    rates, packed_in = [], []

    def seen(m, inp, out):
        if inp[0].dtype == torch.int32:
            packed_in.append(m)
        else:
            rates.append(inp[0].float().mean().item())
    for name in swapped:
        ours.get_submodule(name).register_forward_hook(seen)
    with torch.no_grad():  # inference: the neurons before a SpikeLinear hand over packed words
        ref.eval(), ours.eval()
        same_spikes(ours(x), ref(x))
    packing = [m for m in ours.modules() if getattr(m, "packed_output", False)]
    assert bool(packed_in) == bool(packing) and all(isinstance(m, SpikeLinear) for m in packed_in)
    assert packing or preset != "luo2024-mlp"  # LIF -> Linear: packed (the CNN has Dropout/pooling between)
    for train in (False, True):
        ref.train(train), ours.train(train)
        torch.manual_seed(1)
        y_ref = ref(x)
        torch.manual_seed(1)  # the same dropout masks
        y = ours(x)
        identical = same_spikes(y, y_ref)
    assert min(rates) > 0.01, rates  # the swapped layers did see spikes
    if not identical:
        return  # a flipped spike changes every gradient upstream of it: nothing left to compare
    y.sum().backward(), y_ref.sum().backward()
    for (name, a), (_, b) in zip(ours.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-4, msg=name)


# ---------------------------------------------------------------------------------------------
# converted SNNs: thresholds folded into the layers that read the spikes
# ---------------------------------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        a = torch.relu(self.conv1(x))
        b = torch.relu(self.conv2(a)) + a  # a's spikes also reach the add: a's IF layer stays scaled
        return self.fc(torch.flatten(b, 1))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 10))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_converted_snn_folds_thresholds_and_keeps_its_outputs(backend, per_channel):
    import snnkern
    from snnkern.convert import IFNeuron
    d = dev(backend)
    torch.manual_seed(0)
    ann = cnn().to(d).eval()
    x = torch.rand(16, 1, 8, 8, device=d)
    snn = snnkern.convert(ann, x, per_channel=per_channel, T=8)
    ours = copy.deepcopy(snn)
    swapped = event_driven(ours, backend=backend)
    assert len(swapped) == 3  # conv 2, fc 1, fc 2: every layer but the first reads spikes
    assert all(isinstance(ours.graph_module.get_submodule(t), (SpikeLinear, SpikeConv2d)) for t in swapped)
    assert all(m.binary_output for m in ours.graph_module.modules() if isinstance(m, IFNeuron))
    with torch.no_grad():
        same_logits(ours(x), snn(x))
    assert event_driven(ours) == []  # folded once only


def test_converted_snn_leaves_shared_spikes_scaled():
    import snnkern
    from snnkern.convert import IFNeuron
    torch.manual_seed(0)
    ann = Residual().eval()
    x = torch.rand(8, 1, 8, 8)
    snn = snnkern.convert(ann, x, T=4)
    ours = copy.deepcopy(snn)
    swapped = event_driven(ours, backend="torch")
    neurons = [m for m in ours.graph_module.modules() if isinstance(m, IFNeuron)]
    assert swapped == [] and not any(m.binary_output for m in neurons)  # both IF outputs reach the add
    with torch.no_grad():
        same_logits(ours(x), snn(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_converted_mlp_hands_packed_spikes_to_its_linears(backend):
    import snnkern
    from snnkern.convert import IFNeuron
    from snnkern.energy import count_ops
    d = dev(backend)
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5)).to(d).eval()
    x = torch.rand(16, 20, device=d)
    snn = snnkern.convert(ann, x, T=8)
    ours = copy.deepcopy(snn)
    assert event_driven(ours, backend=backend) == ["2", "4"]
    neurons = [m for m in ours.graph_module.modules() if isinstance(m, IFNeuron)]
    assert all(m.binary_output and m.packed_output for m in neurons)
    words = []
    ours.graph_module.get_submodule("2").register_forward_hook(lambda m, inp, out: words.append(inp[0].dtype))
    with torch.no_grad():
        same_logits(ours(x), snn(x))
    assert words == [torch.int32]  # packed words, straight from the IF kernel
    exact = 0 if d == "cpu" else 1e-3  # a GPU may flip a spike on the threshold (see same_spikes)
    assert [m.last_rate for m in neurons] == pytest.approx([m.last_rate for m in snn.neurons], abs=exact)
    plain, packed = count_ops(snn, x, forward_kwargs={"T": 8}), count_ops(ours, x, forward_kwargs={"T": 8})
    for key in ("spikes", "acs"):
        assert packed.totals[key] == pytest.approx(plain.totals[key], rel=exact)
