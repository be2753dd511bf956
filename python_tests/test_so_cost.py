"""Niederlechner 2019's SO-Costs on a converted network small enough to count by hand.

The paper's simulator (snntoolbox's INIsim) counts a synaptic operation per spike per outgoing
synapse, pooling layers included (fan-out 1 into them), and leaves the first layer on the analog
input out of that count. Our own SO-unit cost (MACs at 14 SOs each, every step) stays beside it.
"""
import torch
from torch import nn

import snnkern
from snnkern.energy import count_ops
from snnkern.experiments.runner import operations_to_error_threshold


def hand_weighted_snn():
    """conv 2x2 (channel 0: +1, always fires; channel 1: -1, silent) -> max-pool 2 -> 8 features ->
    3 hidden (two +1 rows fire, one -1 row is silent) -> 2 outputs; every threshold 1, no biases.

    On a 1x5x5 input of 0.5 (analog: not 0/1), per sample and step:
    - conv on the analog input: 2 channels x 4x4 outputs x 2x2 kernel = 128 MACs;
    - spikes into the pool: channel 0's 4x4 map = 16 (each neuron gets 4 x 0.5 = 2 >= 1: fires every step);
    - pooled spikes: channel 0's 2x2 = 4, each reaching 3 hidden units: 12 ACs;
    - hidden spikes: 2 (each gets 4 spikes of value 1 = 4 >= 1), each reaching 2 outputs: 4 ACs.
    The paper's SO per step: 16 + 12 + 4 = 32; with the input layer at 14 SOs a MAC: 12 + 4 + 14 x 128 = 1808.
    The ANN's MACs: 128 + 8 x 3 + 3 x 2 = 158."""
    conv, fc1, fc2 = nn.Conv2d(1, 2, 2, bias=False), nn.Linear(8, 3, bias=False), nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        conv.weight[0], conv.weight[1] = 1.0, -1.0
        fc1.weight.copy_(torch.tensor([[1.0] * 8, [1.0] * 8, [-1.0] * 8]))
        fc2.weight.fill_(1.0)
    ann = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), fc1, nn.ReLU(), fc2).eval()
    x = torch.full((2, 1, 5, 5), 0.5)  # two identical samples: counts are per sample
    snn = snnkern.convert(ann, x)
    for neuron in snn.neurons:
        neuron.threshold.fill_(1.0)
    return ann, snn, x


def test_spikes_into_a_pool_are_counted_apart_from_the_accumulates():
    ann, snn, x = hand_weighted_snn()
    counts = count_ops(snn, x, forward_kwargs={"T": 3})
    assert counts.per_sample("pool_input_spikes") == 16 * 3
    assert counts.per_sample("acs") == (12 + 4) * 3 and counts.per_sample("macs") == 128 * 3
    assert count_ops(ann, x).per_sample("pool_input_spikes") == 0  # real values into the ANN's pool
    assert count_ops(ann, x).per_sample("macs") == 158


def test_so_cost_is_the_papers_spikes_times_fan_out_without_the_input_layer():
    _, snn, x = hand_weighted_snn()
    out = operations_to_error_threshold(snn, {2: 0.5, 4: 0.99, 8: 0.992}, x, 158)
    assert out["T_at_error_threshold"] == 4  # 0.99 >= 0.992 - 0.005; 0.5 is not
    assert out["so_cost_vs_T"] == {2: 64, 4: 128, 8: 256}
    assert out["so_cost_to_error_threshold"] == 128
    assert out["efficiency_factor_14x"] == 15 * 158 / 128  # Total-Costs: 14 per MAC + 1 per other flop
    assert out["so_cost_with_input_layer_vs_T"] == {2: 2 * 1808, 4: 4 * 1808, 8: 8 * 1808}
    assert out["so_cost_with_input_layer_to_error_threshold"] == 4 * 1808
    assert out["efficiency_factor_14x_with_input_layer"] == 14 * 158 / (4 * 1808)


def test_so_cost_is_unavailable_where_real_values_pass_the_input_layer():
    """An average pool hands the next layer the mean of spikes: no spikes to count, so no paper SO count
    (rather than one that silently leaves that layer out); the SO-unit cost still charges its MACs."""
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 2)).eval()
    x = torch.rand(2, 1, 5, 5)
    out = operations_to_error_threshold(snnkern.convert(ann, x), {2: 0.9, 4: 0.9}, x, 152)
    assert out["so_cost_to_error_threshold"].startswith("unavailable (real values reach")
    assert out["efficiency_factor_14x"] == out["so_cost_to_error_threshold"]
    assert out["so_cost_with_input_layer_to_error_threshold"] == 14 * 2 * (128 + 16)  # both layers' MACs, T=2


def test_the_threshold_is_found_at_its_first_step_and_counted_there():
    """The paper accumulates SOs "up to the first time step reaching the error threshold": given the
    accuracy at every step, that step is the threshold even where the curve's T are coarser."""
    _, snn, x = hand_weighted_snn()
    every_step = {1: 0.2, 2: 0.6, 3: 0.99, 4: 0.985, 5: 0.99, 6: 0.99, 7: 0.99, 8: 0.99}
    out = operations_to_error_threshold(snn, every_step, x, 158, count_at=(2, 4, 8))
    assert out["T_at_error_threshold"] == 3 and out["so_cost_to_error_threshold"] == 3 * 32
    assert out["so_cost_vs_T"] == {2: 64, 3: 96, 4: 128, 8: 256}  # the curve's T, and the threshold's step
