"""bench.report renders the suite's JSON (one file or several, e.g. one per device call) as tables + PNGs."""
import json
import os

import pytest

from bench import report

META = {"gpu": "FakeGPU 80GB", "driver": "1.0", "torch": "2.x", "triton": "3.x", "commit": "abc1234",
        "date": "2026-11-25"}


def bench_record(group, name, **info):
    return {"group": group, "name": name, "extra_info": META | info}


def write(path, records):
    with open(path, "w") as f:
        json.dump({"benchmarks": records}, f)
    return str(path)


def test_report_merges_files_and_states_ratios(tmp_path, capsys):
    kernels = write(tmp_path / "kernels.json", [
        bench_record("lif-fwd", "a", impl="copy", ms_median=0.1, ms_q20=0.1, ms_q80=0.1, gb_per_s=3000.0),
        bench_record("lif-fwd", "b", impl="snnkern", ms_median=0.5, ms_q20=0.49, ms_q80=0.52, gb_per_s=2400.0,
                     copy_gb_per_s=3000.0),
        bench_record("lif-fwd", "c", impl="snntorch", ms_median=1.0, ms_q20=0.9, ms_q80=1.1),
    ])
    networks = write(tmp_path / "networks.json", [
        bench_record("net-mlp", f"{kind}-{T}", network="mlp", mode="inference", kind=kind, T=T, impl=f"{kind} T={T}",
                     ms_median=1.0 + T, ms_q20=1.0, ms_q80=2.0, samples_per_s=1000.0 / (1 + T),
                     j_per_sample=0.01 * T, baseline=kind == "ann")
        for kind, T in (("ann", 1), ("snn", 4), ("snn", 8), ("converted", 8))
    ])
    report.main([kernels, networks, "--plots", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert "FakeGPU 80GB" in out and "commit abc1234" in out
    assert "**3000 GB/s**" in out  # the copy bandwidth of the same run
    assert "Baseline of the ratios: **snnkern**" in out and "| time / snnkern |" in out  # named, not implied
    assert "## lif-fwd" in out and "## net-mlp" in out  # both files in one report
    snntorch_row = next(line for line in out.splitlines() if line.startswith("| snntorch"))
    assert "| 2.00 |" in snntorch_row  # 1.0 ms over the snnkern baseline's 0.5 ms
    snnkern_row = next(line for line in out.splitlines() if line.startswith("| snnkern"))
    assert "| 80 |" in snnkern_row  # 2400 of 3000 GB/s
    for name in ("throughput_vs_T.png", "energy_vs_T.png"):
        path = tmp_path / "plots" / name
        assert path.exists() and os.path.getsize(path) > 1000
        assert f"![{name}]({os.path.relpath(path)})" in out  # printed: relative to the current directory
    # no memory records: no empty plot, a sentence instead
    assert not (tmp_path / "plots" / "memory_vs_T.png").exists()
    assert "No memory_vs_T.png plot: no peak memory" in out


def test_report_written_beside_its_plots_links_them_by_name(tmp_path):
    """--out puts the markdown in the plots' folder: links must not repeat the folder (broken otherwise)."""
    networks = write(tmp_path / "n.json", [
        bench_record("net-mlp", f"{kind}", network="mlp", mode="inference", kind=kind, T=T, impl=kind,
                     ms_median=1.0, ms_q20=1.0, ms_q80=1.0, samples_per_s=10.0, baseline=kind == "ann")
        for kind, T in (("ann", 0), ("snn", 4))])
    report.main([networks, "--plots", str(tmp_path / "out"), "--out", str(tmp_path / "out" / "report.md")])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "![throughput_vs_T.png](throughput_vs_T.png)" in md
    assert "No energy_vs_T.png plot: no measured energy" in md


def test_small_bandwidths_keep_their_digits(tmp_path, capsys):
    """A CPU run's copy bandwidth is a few GB/s or less: "0 GB/s" beside "111%" read as nonsense."""
    report.main([write(tmp_path / "k.json", [
        bench_record("lif-fwd", "a", impl="copy", ms_median=1.0, ms_q20=1.0, ms_q80=1.0, gb_per_s=0.42),
        bench_record("lif-fwd", "b", impl="snnkern", ms_median=0.9, ms_q20=0.9, ms_q80=0.9, gb_per_s=0.466,
                     copy_gb_per_s=0.42)])])
    out = capsys.readouterr().out
    assert "**0.42 GB/s**" in out and "| 0.466 | 111 |" in out and "Above 100% of copy bandwidth" in out


def test_report_of_an_empty_run(tmp_path, capsys):
    report.main([write(tmp_path / "empty.json", [])])
    assert "no benchmark records" in capsys.readouterr().out


def test_report_needs_a_file():
    with pytest.raises(SystemExit):
        report.main([])


SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "gpu_session.sh")


def run_script(out_dir, *stages):
    import subprocess
    import sys
    env = dict(os.environ, OUT=str(out_dir), PYTHON=sys.executable)
    return subprocess.run(["bash", SCRIPT, *stages], capture_output=True, text=True, env=env, timeout=120)


def test_gpu_session_script_renders_the_report_of_its_run(tmp_path):
    write(tmp_path / "kernels.json", [bench_record("lif-fwd", "b", impl="snnkern", ms_median=0.5, ms_q20=0.4,
                                                   ms_q80=0.6)])
    done = run_script(tmp_path, "report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "## lif-fwd" in (tmp_path / "report.md").read_text()
    assert "report: rc=0" in (tmp_path / "stages.txt").read_text()


def test_gpu_session_script_rejects_unknown_stages(tmp_path):
    done = run_script(tmp_path, "benchmark-everything")
    assert done.returncode == 2 and "unknown stage" in done.stdout
