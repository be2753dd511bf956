"""bench.report renders the suite's JSON (one file or several, e.g. one per device call) as tables + PNGs."""
import json
import os

import pytest
import torch

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


# ---- bench.common and bench.sanitize_smoke: what only a GPU run takes, with fakes ---------------------


def test_measured_peak_memory_leaves_out_the_timers_buffers(monkeypatch):
    """triton.testing.do_bench allocates a 256 MiB buffer (it flushes L2 between runs), and an autotuned
    kernel's first call runs do_bench for its configs: neither belongs to fn's peak, which used to be read
    over the timing and so read 256 MiB high (pulling a ratio of peaks toward 1)."""
    import triton.testing

    from bench import common
    MiB = 2**20
    mem = {"now": 100 * MiB, "peak": 100 * MiB}

    def alloc(n):
        mem["now"] += n
        mem["peak"] = max(mem["peak"], mem["now"])

    def free(n):
        mem["now"] -= n
    monkeypatch.setattr(common, "ON_GPU", True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a, **k: mem.update(peak=mem["now"]))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a, **k: mem["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a, **k: mem["peak"])
    calls = []

    def fn():  # 10 MiB of temporaries; the first call also autotunes, under do_bench's flush buffer
        if not calls:
            alloc(256 * MiB)
            free(256 * MiB)
        calls.append(1)
        alloc(10 * MiB)
        free(10 * MiB)

    def do_bench(fn, warmup, rep, quantiles):  # as triton's: fn once, then the flush buffer while it times
        fn()
        alloc(256 * MiB)
        for _ in range(3):
            fn()
        free(256 * MiB)
        return [1.0, 2.0, 3.0]
    monkeypatch.setattr(triton.testing, "do_bench", do_bench)
    stats = common.measure(fn)
    assert stats["peak_mib"] == 10.0
    assert (stats["ms_q20"], stats["ms_median"], stats["ms_q80"]) == (1.0, 2.0, 3.0)


def test_run_metadata_takes_the_commit_from_the_environment(monkeypatch):
    """The device gets the working tree without .git: the session passes the commit as SNNKERN_COMMIT."""
    from bench import common
    monkeypatch.setenv("SNNKERN_COMMIT", "abc1234")
    assert common.run_metadata()["commit"] == "abc1234"
    monkeypatch.setenv("SNNKERN_COMMIT", "")
    assert common.run_metadata()["commit"] != ""  # git's answer here, or "unknown"


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET", "0") in ("", "0"),
                    reason="runs the Triton kernels on CPU: needs TRITON_INTERPRET=1")
def test_sanitize_smoke_runs_every_tile_config_without_the_autotuner(monkeypatch):
    """Under compute-sanitizer, Triton's autotuner would time every config of every key (minutes): the smoke
    workload makes each config of TILE_CONFIGS[precision] in turn the only one (launch_tiles then launches
    the plain kernel) and runs the tiles cases per config, 16-bit and fp32, restoring the lists after."""
    from bench import sanitize_smoke
    SL = sanitize_smoke.SL
    original = {p: SL.TILE_CONFIGS[p] for p in ("16bit", "fp32")}
    seen = []
    launch = SL.launch_tiles

    def recording_launch(kernel, tuned, precision, *args, **kwargs):
        seen.append((precision, tuple(SL.TILE_CONFIGS[precision])))
        return launch(kernel, tuned, precision, *args, **kwargs)
    monkeypatch.setattr(SL, "launch_tiles", recording_launch)
    tiles = [(name, fn) for name, fn in sanitize_smoke.cases("triton", "cpu") if "tiles" in name]
    for name, fn in tiles:
        got, ref = fn()
        assert torch.allclose(got.float(), ref.float(), rtol=1e-2, atol=1e-2), name
    assert all(len(configs) == 1 for _, configs in seen), seen  # never the autotuner's list
    for precision, configs in original.items():
        assert {c for p, (c,) in seen if p == precision} == set(configs), precision  # every tile shape
        assert SL.TILE_CONFIGS[precision] is configs  # restored
    assert len(tiles) == 2 * sum(len(c) for c in original.values())  # both shapes, every config


SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "gpu_session.sh")


def run_script(tmp_path, *args, timeout=120, **env):
    """bench/gpu_session.sh with $OUT and its work folder under tmp_path; returns (process, $OUT, run folder)."""
    import subprocess
    import sys
    out, work = tmp_path / "out", tmp_path / "work"
    full_env = dict(os.environ, OUT=str(out), WORK_DIR=str(work), RUN_NAME="run", PYTHON=sys.executable, **env)
    full_env.pop("TRITON_INTERPRET", None)  # the dry stages run the CPU reference: fast
    # and they are the GPU session's stages, not CI's run: conftest's guard (CI=1 needs the interpreter)
    # would fail the dry tests stage on a CI machine
    full_env.pop("CI", None)
    done = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=full_env, timeout=timeout)
    return done, out, work / "run"


def stage_status(run_dir) -> dict:
    rows = [line.split("\t") for line in (run_dir / "stages.tsv").read_text().splitlines()[1:]]
    return {row[0]: row[1] for row in rows}


def test_gpu_session_dry_run_isolates_a_failed_stage_and_packs_everything(tmp_path):
    """The whole session on CPU (each stage a tiny real command): a stage made to fail is recorded, the
    stages after it still run, the exit status says so, and $OUT holds <= 8 files: the tarball with every
    log/JSON/junit/plot/report, summary.md and summary.json."""
    import tarfile
    done, out, run = run_script(tmp_path, "--dry", timeout=600, GPU_SESSION_FAIL="spike_linear",
                                SNNKERN_COMMIT="abc1234", SNNKERN_TILES_AUTOTUNE="0")
    log = done.stdout + done.stderr
    assert done.returncode == 1, log
    status = stage_status(run)
    assert list(status) == ["setup", "build", "info", "tests", "sanitize", "lif", "compile_peer", "spike_linear",
                            "networks", "swap_convert", "overhead", "report"], log
    assert status["spike_linear"] == "failed"
    failed = {k: v for k, v in status.items() if k != "spike_linear" and v != "ok"}
    assert not failed, (status, {k: (run / f"{k}.log").read_text()[-3000:] for k in failed
                                 if (run / f"{k}.log").exists()})  # the stage's own log says why
    assert sorted(p.name for p in out.iterdir()) == ["results.tar.gz", "session.log", "summary.json", "summary.md"]
    assert all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    assert "$OUT: 4 files (at most 8), 0 over" in log
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
    for name in ("stages.tsv", "tests.xml", "lif.json", "networks.json", "overhead.json", "report.md", "summary.md",
                 "nvidia-smi.txt", "build.log", "spike_linear.log", "session.json"):
        assert f"run/{name}" in names, sorted(names)
    md = (out / "summary.md").read_text()
    assert "**FAILED: spike_linear**" in md and "| spike_linear | failed |" in md
    assert "Tests (tests.xml): 2 passed, 0 failed, 0 errors, 0 skipped of 2." in md
    assert "## LIF kernels" in md and "| fwd | 4 | 1024 | fp32 |" in md  # real CPU records, rendered
    assert "network vgg-cnn-32x32 inference" in md  # the spiking VGG CNN ran against its ANN
    assert "Exit status 1" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed_stages"] == ["spike_linear"] and summary["mode"] == "dry"
    assert "## lif fwd T=4 N=1024 fp32" in (run / "report.md").read_text()
    # the commit named in the command (the device has no .git): in the records, session.json, versions.txt,
    # the summary
    assert summary["meta"]["commit"] == "abc1234" and "commit abc1234" in md
    assert json.loads((run / "session.json").read_text())["commit"] == "abc1234"
    versions = (run / "versions.txt").read_text()
    for line in ("commit abc1234", "pip: pip ", "setuptools: ", "nvcc ("):
        assert line in versions, versions
    # the tiles autotuners off for the tests and sanitize stages only (the caller's setting is not inherited);
    # memcheck without the caching allocator
    started = {line.split(" ")[1]: line for line in log.splitlines() if line.startswith("=== ") and "(cap" in line}
    assert "env SNNKERN_TILES_AUTOTUNE=0 " in started["tests"], started["tests"]
    assert "PYTORCH_NO_CUDA_MEMORY_CACHING=1 SNNKERN_TILES_AUTOTUNE=0 " in started["sanitize"], started["sanitize"]
    assert not [s for s, line in started.items() if "TILES_AUTOTUNE" in line and s not in ("tests", "sanitize")]
    # the sanitize workload ran every tile config alone (Triton interpreted in the dry run)
    from snnkern.ops.spike_linear import TILE_CONFIGS
    sanitize = (run / "sanitize.log").read_text()
    for precision, configs in TILE_CONFIGS.items():
        for i, config in enumerate(configs):
            assert f"triton spike_linear tiles fwd+bwd {precision} M=65 K=100 config {i} {config}" in sanitize


def test_gpu_session_caps_fit_the_budget_and_the_header_table():
    """Each mode's stage caps sum to at most its budget less the 10 s kept for packing (so that no stage is
    cut short by the ones before it running to their caps), and the header's table states them."""
    import re
    text = open(SCRIPT).read()
    caps = dict(re.findall(r"\[(\w+)\]=(\d+)", re.search(r"declare -A CAP=\(([^)]*)\)", text).group(1)))
    quick_caps = caps | dict(re.findall(r"\[(\w+)\]=(\d+)", re.search(r"CAP\+=\(([^)]*)\)", text).group(1)))
    stages = re.search(r"STAGES=\(([^)]*)\)\n  BUDGET=\$\{GPU_SESSION_BUDGET:-240\}", text).group(1).split()
    full_stages = re.search(r"STAGES=\(([^)]*)\)\n  BUDGET=\$\{GPU_SESSION_BUDGET:-480\}", text).group(1).split()
    assert sum(int(caps[s]) for s in full_stages) <= 480 - 10
    assert sum(int(quick_caps[s]) for s in stages) <= 240 - 10
    table = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"^#   (\w+) +(\d+) +(\d+|-) ", text, re.M)}
    for stage in full_stages:
        assert table[stage] == (caps[stage], quick_caps[stage] if stage in stages else "-"), stage


def test_gpu_session_caps_a_hung_stage_and_goes_on(tmp_path):
    import time
    t0 = time.monotonic()
    done, out, run = run_script(tmp_path, "--dry", "--stages=sanitize,build", GPU_SESSION_HANG="sanitize",
                                GPU_SESSION_CAP_sanitize="3")
    assert done.returncode == 1, done.stdout
    assert stage_status(run) == {"build": "ok", "sanitize": "timeout"}  # script order, not argument order
    assert time.monotonic() - t0 < 90  # the 600 s sleep was cut at its 3 s cap
    assert "killed at the 3 s cap" in (out / "summary.md").read_text()


def test_gpu_session_skips_stages_past_its_budget(tmp_path):
    done, out, run = run_script(tmp_path, "--dry", "--stages=build,info", GPU_SESSION_BUDGET="5")
    assert done.returncode == 1, done.stdout
    assert stage_status(run) == {"build": "skipped", "info": "skipped"}
    md = (out / "summary.md").read_text()
    assert "**FAILED: build, info**" in md and "no time left in the 5 s budget" in md
    assert (out / "results.tar.gz").exists()  # packing always happens


def test_gpu_session_quick_mode_runs_its_own_stages(tmp_path):
    done, out, run = run_script(tmp_path, "--quick", "--dry", "--stages=build,networks")
    assert done.returncode == 0, done.stdout
    assert stage_status(run) == {"build": "ok"}  # networks is not a quick stage
    session = json.loads((run / "session.json").read_text())
    assert session["budget_s"] == 240 and session["mode"] == "dry"


def test_gpu_session_says_when_a_file_would_not_come_back(tmp_path):
    done, out, run = run_script(tmp_path, "--dry", "--stages=build", GPU_SESSION_FILE_LIMIT="100")
    assert done.returncode == 1 and "PACK CHECK FAILED" in done.stdout, done.stdout


def test_gpu_session_script_rejects_unknown_options(tmp_path):
    done, _, _ = run_script(tmp_path, "benchmark-everything")
    assert done.returncode == 2 and "unknown option" in done.stdout



def test_editable_builds_stay_in_this_environment():
    """The README's test command and the GPU session build the extension with pip's editable install.
    pip < 25.3 runs setuptools' `develop` for it, and setuptools >= 80 makes `develop` call pip again
    *with* build isolation, where torch is missing: the build then fails (seen on Python 3.12 with
    torch 2.11 / pip 23.2 / setuptools 81, the GPU machine's torch). --use-pep517 takes the PEP 660 path,
    which honours --no-build-isolation with every pip >= 21.3. CI's Python 3.11 venv (setuptools 65) does
    not show the failure, hence this check of the commands themselves."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    readme = open(os.path.join(root, "README.md")).read()
    test_command = readme.split("## The two commands", 1)[1].split("```bash\n", 1)[1].splitlines()[0]
    build_line = next(line for line in open(SCRIPT).read().splitlines() if "pip install" in line and " -e ." in line)
    for command in (test_command, build_line):
        editable = command[command.index("SNNKERN_FORCE_CUDA_BUILD"):] if "SNNKERN_FORCE" in command else command
        assert "--no-build-isolation" in editable and "--use-pep517" in editable, command

# ---- bench.summary -------------------------------------------------------------------------------------


def lif_record(impl, mode, ms, dtype="fp32", **info):
    return bench_record(f"lif {mode} T=16 N=4194304 {dtype}", impl, impl=impl, mode=mode, T=16, N=2**22, dtype=dtype,
                        ms_median=ms, ms_q20=ms, ms_q80=ms, **info)


def test_summary_states_ratios_targets_and_test_counts(tmp_path):
    from bench import summary
    (tmp_path / "stages.tsv").write_text("stage\tstatus\trc\tseconds\tcap\tnote\n"
                                         "build\tok\t0\t140\t165\t\n"
                                         "lif\ttimeout\t124\t60\t60\tkilled at the 60 s cap\n"
                                         "sanitize\tunsupported\t1\t3\t25\tcompute-sanitizer cannot run\n")
    (tmp_path / "session.json").write_text(json.dumps({"run_name": "h200-x", "mode": "full", "budget_s": 480,
                                                       "elapsed_s": 470}))
    (tmp_path / "tests.xml").write_text(
        '<testsuites><testsuite><testcase classname="a" name="ok"/><testcase classname="a" name="bad">'
        '<failure message="x"/></testcase><testcase classname="a" name="s"><skipped/></testcase>'
        '</testsuite></testsuites>')
    fwd_bytes, fb_bytes = 3.0e9, 6.0e9
    write(tmp_path / "lif.json", [
        bench_record("copy", "copy", impl="copy", ms_median=1.0, ms_q20=1.0, ms_q80=1.0, gb_per_s=4000.0),
        lif_record("snnkern", "fwd", 1.0, gb_per_s=fwd_bytes / 1e-3 / 1e9, peak_mib=512.0),  # 3000 GB/s: 75%
        lif_record("snnkern", "fwd", 0.5, dtype="bf16"),
        lif_record("snnkern_packed", "fwd", 0.6),
        lif_record("spikingjelly", "fwd", 2.0),
        lif_record("snnkern", "fwd_bwd", 2.0, gb_per_s=fb_bytes / 2e-3 / 1e9),
        lif_record("snnkern_sj", "fwd_bwd", 2.0),
        lif_record("spikingjelly", "fwd_bwd", 4.0),
        bench_record("lif saved", "s", impl="snnkern", mode="fwd_grad", T=16, N=2**22, dtype="fp32", ms_median=1.0,
                     ms_q20=1.0, ms_q80=1.0, saved_bytes_per_element=0.25),
    ])
    write(tmp_path / "networks.json", [
        bench_record("network vgg train_step", kind, network="vgg-cnn-32x32", kind=kind, T=T, mode="train_step",
                     impl=kind, ms_median=ms, ms_q20=ms, ms_q80=ms, peak_mib=mib, baseline=kind == "ann",
                     watts=300.0, j_per_sample=0.01)
        for kind, T, ms, mib in (("ann", 0, 1.0, 100.0), ("snn", 4, 3.0, 400.0), ("spikingjelly", 4, 6.0, 1000.0))])
    s = summary.summarize(str(tmp_path))
    assert s["failed_stages"] == ["lif"]  # "unsupported" memcheck does not fail a run
    assert s["tests"][0] | {"failures": None} == {"file": "tests.xml", "tests": 3, "passed": 1, "failed": 1, "errors": 0,
                                                  "skipped": 1, "failures": None}
    fwd = next(r for r in s["lif"] if r["mode"] == "fwd" and r["dtype"] == "fp32")
    assert fwd["frac_copy"] == 0.75 and fwd["peers"] == {"snnkern_packed": 0.6, "spikingjelly": 2.0}
    t = {row["target"]: row for row in s["targets"]}
    assert t["LIF fp32 fwd+bwd: SpikingJelly time / snnkern time"]["status"] == "met"  # 2.0 >= 1.6
    assert t["LIF fp32 fwd: GB/s / copy GB/s"]["status"] == "MISSED"  # 0.75 < 0.9
    assert t["LIF fwd: fp32 time / bf16 time"]["value"] == 2.0
    assert t["LIF fwd: packed-spike time / fp32-spike time"]["status"] == "met"
    assert t["saved for backward, snnkern fp32 (B/element)"]["status"] == "met"
    assert t["saved for backward, snnkern_cuda fp32 (B/element)"]["status"] == "unavailable"
    assert t["spiking CNN T=4 train step: snnkern time / SpikingJelly time"]["value"] == 0.5
    assert t["spiking CNN T=4 train step: snnkern peak memory / SpikingJelly's"]["value"] == 0.4
    md = summary.render(s)
    assert "**FAILED: lif** in 470 s of a 480 s budget" in md
    assert "1 passed, 1 failed, 0 errors, 1 skipped of 3: `a::bad`" in md
    assert "**4000 GB/s**" in md and "| fwd | 16 | 4194304 | fp32 | 1.000 | 3000 | 75% | 512 |" in md
    assert "peak MiB: what a call allocates at its peak above what was allocated before it" in md
    assert "| snn | 3.000 | 3.00x | 400 | 300 | 0.01 |" in md  # time and energy over the ANN's
    summary.main([str(tmp_path), "--md", str(tmp_path / "s.md"), "--json", str(tmp_path / "s.json")])
    assert json.loads((tmp_path / "s.json").read_text())["copy_gb_per_s"] == 4000.0


def test_summary_of_an_empty_run_dir(tmp_path):
    from bench import summary
    md = summary.render(summary.summarize(str(tmp_path)))
    assert "All stages passed" in md and "no junit XML" in md and "unavailable" in md
    assert "peak MiB:" not in md  # no peak column, no note


# ---- bench.compile_census --------------------------------------------------------------------------------


def test_compile_census_keys_what_the_jit_specializes_on():
    """One key per compile: constexpr values, pointer dtype and 16-byte alignment, int == 1 and % 16 == 0;
    the same launch twice is one compile."""
    from bench.compile_census import specialization
    tl = pytest.importorskip("triton.language")

    def kernel(x_ptr, n, BLOCK: tl.constexpr):
        pass

    a, b = torch.zeros(64), torch.zeros(64, dtype=torch.float16)
    key = specialization(kernel, (a, 64), {"BLOCK": 32, "num_warps": 4})
    assert key == specialization(kernel, (torch.ones(64), 128), {"BLOCK": 32, "num_warps": 4})  # same compile
    for other in [((b, 64), {"BLOCK": 32, "num_warps": 4}),  # dtype
                  ((a[1:], 64), {"BLOCK": 32, "num_warps": 4}),  # alignment
                  ((a, 1), {"BLOCK": 32, "num_warps": 4}), ((a, 63), {"BLOCK": 32, "num_warps": 4}),  # n
                  ((a, 64), {"BLOCK": 64, "num_warps": 4}), ((a, 64), {"BLOCK": 32, "num_warps": 8})]:
        assert specialization(kernel, *other) != key, other


def test_compile_census_counts_a_test_run(tmp_path):
    """The plugin over a real (small) interpreter run writes the count it prints."""
    import subprocess
    import sys
    pytest.importorskip("triton")
    out = tmp_path / "census.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("CI", None)  # conftest's CI guard is for the suite itself
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench.compile_census",
                           "python_tests/test_spike_tiles.py", "-k", "every_tile_shape", f"--compile-census={out}"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    census = json.loads(out.read_text())
    kernels = census["by_kernel"]
    # one tile shape per test (7 tests), forward and grad_weight kernels, and the schedule
    assert {"_spike_mm_tiles_kernel", "_spike_grad_w_tiles_kernel"} <= set(kernels)
    assert kernels["_spike_mm_tiles_kernel"][0] == 7 and census["distinct"] == sum(d for d, _ in kernels.values())
    assert census["launches"] >= census["distinct"]
    assert f"compile census: {census['distinct']} distinct" in done.stdout
