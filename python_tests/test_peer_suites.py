"""The peers' own unit tests against swapped layers, and the plugin that swaps them.

``test_peer_suite`` runs snnTorch's and SpikingJelly's own test files (found as ``peer_suites.py`` says:
``$SNNKERN_SNNTORCH_TESTS`` / ``$SNNKERN_SPIKINGJELLY_TESTS`` or the cache ``peer_suites.py fetch``
fills) twice, on the originals and with ``peer_swap_plugin``: every test that passes on the originals
must pass swapped. Without the suites it skips, saying how to provide them.

The plugin's own tests need no peer suite: a small peer-style test file, written here, builds the
swapped classes (and ones swap must leave alone) under the plugin and without it, and the two runs
must give the same spikes, membranes and gradients, with the swapped classes where swap swaps.
"""
import os
import textwrap

import pytest
import torch

import peer_suites
from peer_suites import PEERS, compare, locate, run_peer, run_pytest

BACKEND = os.environ.get("SNNKERN_PEER_BACKEND", "torch")


@pytest.mark.parametrize("name", list(PEERS))
def test_peer_suite(name):
    peer = PEERS[name]
    pytest.importorskip(peer.name)
    test_dir = locate(peer)
    if test_dir is None:
        pytest.skip(peer_suites.how_to_provide(peer))
    result = run_peer(peer, test_dir, backend=BACKEND)
    print(result.summary())
    assert result.passed_original, f"no {name} test passed on the originals:\n{result.summary()}"
    assert result.swapped_layers > 0, f"the plugin swapped no layer in {name}'s suite:\n{result.summary()}"
    assert result.ok, result.summary()


# ---------------------------------------------------------------------------------------------
# the plugin itself, on a peer-style test file (no peer suite needed)
# ---------------------------------------------------------------------------------------------

TINY_PEER_TESTS = '''
import os

import pytest
import torch

snn = pytest.importorskip("snntorch")
from snntorch import surrogate
from spikingjelly.activation_based import functional, neuron


def x_seq(seed, shape=(6, 3, 5)):
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) + 0.4).requires_grad_()


def save(name, layer, x, spikes, mems):
    (spikes * torch.linspace(0.5, 1.5, spikes.shape[-1]) + mems).sum().backward()
    params = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    torch.save({"class": f"{type(layer).__module__}.{type(layer).__qualname__}", "spikes": spikes.detach(),
                "mems": mems.detach(), "x_grad": x.grad.clone(), "param_grads": params},
               os.path.join(os.environ["TINY_PEER_OUT"], name + ".pt"))


def leaky_loop(lif, x, init_hidden=False):
    mem = None if init_hidden else lif.init_leaky()
    spikes, mems = [], []
    for t in range(x.shape[0]):
        if init_hidden:
            spk = lif(x[t])
            mem = lif.mem
        else:
            spk, mem = lif(x[t], mem)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


def test_leaky():
    lif = snn.Leaky(beta=0.8, spike_grad=surrogate.fast_sigmoid(slope=10), learn_beta=True)
    assert isinstance(lif, snn.Leaky)
    x = x_seq(0)
    save("leaky", lif, x, *leaky_loop(lif, x))


def test_leaky_hidden_reset_zero():
    lif = snn.Leaky(beta=0.6, threshold=0.7, init_hidden=True, reset_mechanism="zero")
    x = x_seq(1)
    save("leaky_hidden", lif, x, *leaky_loop(lif, x, init_hidden=True))


def test_leaky_swap_leaves():  # an option swap does not reproduce: the original stays
    lif = snn.Leaky(beta=0.5, surrogate_disable=True)
    x = x_seq(2)
    spikes, mems = leaky_loop(lif, x)
    torch.save({"class": f"{type(lif).__module__}.{type(lif).__qualname__}"},
               os.path.join(os.environ["TINY_PEER_OUT"], "leaky_left.pt"))


def test_leaky_subclass():  # a user's subclass may change the semantics: swap leaves it
    class MyLeaky(snn.Leaky):
        pass

    lif = MyLeaky(beta=0.9)
    x = x_seq(3)
    save("leaky_subclass", lif, x, *leaky_loop(lif, x))


def test_lif_node_multi_step():
    node = neuron.LIFNode(tau=2.5, v_reset=None, step_mode="m", store_v_seq=True)
    x = x_seq(4)
    spikes = node(x)
    save("lif_node", node, x, spikes, node.v_seq)
    functional.reset_net(node)


def test_if_node_single_step():
    node = neuron.IFNode(v_threshold=0.8, detach_reset=True)
    x = x_seq(5)
    spikes, mems = [], []
    for t in range(x.shape[0]):
        spikes.append(node(x[t]))
        mems.append(node.v)
    save("if_node", node, x, torch.stack(spikes), torch.stack(mems))


def test_plif_node():
    node = neuron.ParametricLIFNode(init_tau=3.0, step_mode="m", store_v_seq=True)
    x = x_seq(6)
    spikes = node(x)
    save("plif_node", node, x, spikes, node.v_seq)
'''

SWAPPED = {"leaky": "snnkern.convert._snntorch.Leaky", "leaky_hidden": "snnkern.convert._snntorch.Leaky",
           "lif_node": "snnkern.convert._spikingjelly.LIFNode", "if_node": "snnkern.convert._spikingjelly.IFNode",
           "plif_node": "snnkern.convert._spikingjelly.ParametricLIFNode"}
LEFT = {"leaky_left": "snntorch._neurons.leaky.Leaky",
        "leaky_subclass": "test_tiny_peer.test_leaky_subclass.<locals>.MyLeaky"}


def test_plugin_swaps_what_the_peers_build(tmp_path):
    pytest.importorskip("snntorch")
    pytest.importorskip("spikingjelly")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_tiny_peer.py").write_text(textwrap.dedent(TINY_PEER_TESTS))
    runs = {}
    for swap in (False, True):
        out = tmp_path / ("swapped" if swap else "original")
        out.mkdir()
        runs[swap] = run_pytest([str(suite)], swap=swap, backend="torch", rootdir=suite,
                                extra_env={"TINY_PEER_OUT": str(out)}, timeout=600)
        outcomes = {k.split("::")[-1]: v["outcome"] for k, v in runs[swap]["outcomes"].items()}
        assert set(outcomes.values()) == {"passed"}, (outcomes, runs[swap]["output"])
        assert len(outcomes) == 7
    original, swapped = runs[False], runs[True]
    assert original["swapped"] == {} and original["left"] == {}

    # what the plugin recorded, per test
    swaps = {k.split("::")[-1]: v for k, v in swapped["swapped"].items()}
    assert swaps == {"test_leaky": [["snntorch.Leaky", SWAPPED["leaky"]]],
                     "test_leaky_hidden_reset_zero": [["snntorch.Leaky", SWAPPED["leaky"]]],
                     "test_lif_node_multi_step": [["spikingjelly LIFNode", SWAPPED["lif_node"]]],
                     "test_if_node_single_step": [["spikingjelly IFNode", SWAPPED["if_node"]]],
                     "test_plif_node": [["spikingjelly ParametricLIFNode", SWAPPED["plif_node"]]]}
    left = {k.split("::")[-1]: v for k, v in swapped["left"].items()}
    assert list(left) == ["test_leaky_swap_leaves"]
    assert "surrogate_disable=True" in left["test_leaky_swap_leaves"][0][1]

    # the layers the tests held, and what they computed: the originals' results
    for name in [*SWAPPED, *LEFT]:
        before = torch.load(tmp_path / "original" / f"{name}.pt")
        after = torch.load(tmp_path / "swapped" / f"{name}.pt")
        assert after["class"] == SWAPPED.get(name, LEFT.get(name)), name
        assert before["class"] == LEFT.get(name, before["class"]) and not before["class"].startswith("snnkern")
        if "spikes" not in before:
            continue
        assert torch.equal(after["spikes"], before["spikes"]), name
        for key in ("mems", "x_grad"):
            torch.testing.assert_close(after[key], before[key], rtol=1e-5, atol=1e-6, msg=f"{name} {key}")
        assert after["param_grads"].keys() == before["param_grads"].keys(), name
        for p in before["param_grads"]:
            torch.testing.assert_close(after["param_grads"][p], before["param_grads"][p], rtol=1e-5, atol=1e-6,
                                       msg=f"{name} grad {p}")
    assert compare("tiny", original, swapped).ok


def _report(outcomes, swapped=None, left=None):
    return {"outcomes": {k: ({"outcome": v} if isinstance(v, str) else v) for k, v in outcomes.items()},
            "swapped": swapped or {}, "left": left or {}, "peers": {}}


def test_compare_counts_only_tests_that_pass_on_the_originals():
    original = _report({"a": "passed", "b": "passed", "c": "failed", "d": "skipped", "e": "xfailed", "f": "passed"})
    swapped = _report({"a": "passed", "b": {"outcome": "failed", "message": "E   AssertionError: spikes differ"},
                       "c": "passed", "d": "skipped", "e": "xfailed",
                       "f": {"outcome": "failed", "message": "E   ValueError: Leaky (swapped by snnkern) has option(s) "
                                                             "set after the swap that snnkern cannot reproduce"}},
                      swapped={"a": [["snntorch.Leaky", "x"]], "<collection>": [["snntorch.Leaky", "x"]]},
                      left={"b": [["snntorch.Leaky", ["reset_delay=False"]]]})
    c = compare("p", original, swapped)
    assert c.collected == 6
    assert c.passed_original == ["a", "b", "f"] and c.passed_swapped == ["a"]
    assert [r[0] for r in c.regressions] == ["b", "f"] and [r[0] for r in c.refused] == ["f"]
    assert not c.ok
    assert [n[:2] for n in c.not_counted] == [("c", "failed"), ("d", "skipped"), ("e", "xfailed")]
    assert c.fixed_by_swap == ["c"]
    assert c.swapped_layers == 2 and c.tests_with_swaps == 1
    assert c.left == {"snntorch.Leaky: reset_delay=False": 1}
    text = c.summary()
    assert "FAILED SWAPPED b [failed]: E   AssertionError: spikes differ" in text
    # a test missing from the swapped run is a failure, not a silent pass
    assert not compare("p", _report({"a": "passed"}), _report({})).ok
    # a known difference is listed with its reason, not counted
    known = compare("p", original, swapped, {"b": "observes the implementation"})
    assert [r[0] for r in known.regressions] == ["f"]
    assert known.known == [("b", "failed", "observes the implementation")]
    assert "known difference, failed swapped (not counted) b: observes the implementation" in known.summary()


def test_absent_suite_skip_reason_says_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.setenv("SNNKERN_PEER_TESTS_DIR", str(tmp_path))
    for peer in PEERS.values():
        monkeypatch.delenv(peer.env, raising=False)
        assert locate(peer) is None
        text = peer_suites.how_to_provide(peer)
        assert peer.env in text and "peer_suites.py fetch" in text and str(tmp_path) in text
        monkeypatch.setenv(peer.env, str(tmp_path))
        assert locate(peer) == tmp_path
