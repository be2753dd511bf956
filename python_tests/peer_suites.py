"""The peers' own unit tests (snnTorch, SpikingJelly) run against ``snnkern.swap``'s layers.

Their test files are not shipped in their wheels or sdists, and snnkern does not copy them: they are
read from a checkout of each peer (or from a cache this script fills from one), and each suite runs
twice in a subprocess, on the originals and with ``peer_swap_plugin`` (every ``Leaky`` / ``LIFNode`` /
``IFNode`` / ``ParametricLIFNode`` the tests build becomes snnkern's). Every test that passes on the
originals must pass swapped, but for the few that observe how a layer computes rather than what (the
peer's own op counters), listed in ``Peer.known_differences`` with their reason and printed in every
summary; tests that fail on the originals (GPU-only, missing packages or data, test files newer or
older than the installed peer) are reported with their reason, not counted.

    python python_tests/peer_suites.py fetch [DEST] [--snntorch GIT] [--snntorch-rev REV]
                                             [--spikingjelly GIT] [--spikingjelly-rev REV]
    python python_tests/peer_suites.py run [--peer NAME] [--backend torch|auto|triton|cuda]

``fetch`` copies each peer's test tree, at a commit, out of a git repository (a local checkout or bare
mirror, or a URL it clones from: that needs network) into ``DEST/<peer>/`` (default: the cache below).
Where the suites are found, per peer: ``$SNNKERN_SNNTORCH_TESTS`` (snnTorch's ``tests/`` directory) /
``$SNNKERN_SPIKINGJELLY_TESTS`` (SpikingJelly's ``test/`` directory), else ``<cache>/snntorch/tests`` /
``<cache>/spikingjelly/test``, with ``<cache>`` = ``$SNNKERN_PEER_TESTS_DIR`` or
``~/.cache/snnkern/peer-tests``. ``$SNNKERN_<PEER>_SELECT`` (paths relative to that directory,
space-separated, or ``all``) replaces the default selection (snnTorch: all of ``tests/``; SpikingJelly:
``activation_based/``). Point the variables at a copy of the test tree:
a checkout's own package must not shadow the installed one (the run checks where the peer was imported
from).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PASS = ("passed", "xpassed")
# what snnkern says when a swapped layer is given, after the swap, an option it cannot reproduce
REFUSAL = "(swapped by snnkern) has option(s) set after the swap"


@dataclass(frozen=True)
class Peer:
    name: str  # the importable package
    env: str  # environment variable naming the test tree
    repo: str  # where the test tree lives
    tree: str  # the test tree's directory in the repository
    rev: str  # the commit whose library code equals the release snnkern pins (see pinned_note)
    pinned_note: str
    select: tuple = ()  # paths run by default, relative to the test tree; () = all of it
    package_dirs: tuple = ()  # packages the tests import from the test tree by its name (``test.activation_based``)
    # tests that observe how a layer computes, not what: node id -> why they differ swapped. Listed in every
    # summary, not counted as failures; a rule here needs the reason spelled out.
    known_differences: dict = field(default_factory=dict)

    @property
    def select_env(self) -> str:
        return f"SNNKERN_{self.name.upper()}_SELECT"


PEERS = {
    "snntorch": Peer(
        "snntorch", "SNNKERN_SNNTORCH_TESTS", "https://github.com/jeshraghian/snntorch", "tests",
        "7472cd014ebe68d68f877464a9dfc53ed3b80088",
        "snntorch 1.0.0 is not tagged; this commit (refs/pull/409/merge) holds, byte for byte, the library "
        "code of the 1.0.0 wheel (all but _version.py)",
    ),
    "spikingjelly": Peer(
        "spikingjelly", "SNNKERN_SPIKINGJELLY_TESTS", "https://github.com/fangwei123456/spikingjelly", "test",
        "afb132264a8cbe38d0f221dcef04053e6ba134d3",
        "spikingjelly 2.0.0 is not tagged; master at this commit (package version 2.0.0.dev1) is the closest "
        "stored state to the 2.0.0 wheel, which is newer: some of its tests target an older API",
        select=("activation_based",), package_dirs=("test",),
        known_differences={
            **dict.fromkeys((
                "activation_based/test_op_counter_neuron_state.py::test_neuron_state_counter_ifnode_multi_step_has_state_metrics",
                "activation_based/test_op_counter_neuron_state.py::test_neuron_state_counter_lif_projection_tracks_potential_access",
                "activation_based/test_op_counter_snn_energy.py::test_neuron_state_counter_still_exposes_scalar_and_structured_views",
            ), "op_counter.NeuronStateCounter counts the ATen ops of SpikingJelly's own neuron code on the state "
               "tensors it materializes (or estimates SpikingJelly's own registered sj_* ops): a swapped layer runs "
               "snnkern's fused op, so it records no neuron-state op (spikes and membranes are unchanged)"),
            "activation_based/test_roofline.py::test_dispatch_counter_basic":
                "op_counter.DispatchCounterMode(strict=True) raises on any op its counters do not define: the swapped "
                "layer's ops are snnkern's (on CPU the reference creates scalar tensors, aten.lift_fresh; on a GPU "
                "the snnkern::lif ops), not SpikingJelly's",
        },
    ),
}


def cache_dir() -> Path:
    return Path(os.environ.get("SNNKERN_PEER_TESTS_DIR") or Path.home() / ".cache" / "snnkern" / "peer-tests")


def locate(peer: Peer) -> Path | None:
    """The peer's test tree: its environment variable, else the cache; None when neither has it."""
    given = os.environ.get(peer.env)
    path = Path(given) if given else cache_dir() / peer.name / peer.tree
    return path if path.is_dir() else None


def how_to_provide(peer: Peer) -> str:
    return (f"{peer.name}'s own test suite is not here: set {peer.env} to a copy of the {peer.tree}/ directory "
            f"of {peer.repo} (commit {peer.rev[:12]}) outside a checkout, or run "
            f"`python python_tests/peer_suites.py fetch` (clones it; or --{peer.name} PATH for a local "
            f"checkout/mirror) to put it in {cache_dir() / peer.name / peer.tree}")


def selection(peer: Peer, test_dir: Path) -> list[str]:
    chosen = os.environ.get(peer.select_env, "").split() or list(peer.select) or ["all"]
    if chosen == ["all"]:
        return [str(test_dir)]
    return [str(test_dir / p) for p in chosen if (test_dir / p).exists()]


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------

def run_pytest(paths: list[str], *, swap: bool, backend: str = "torch", rootdir: Path, extra_env=None,
               package_dirs=(), timeout: float = 3600) -> dict:
    """Run pytest on ``paths`` in a subprocess with the plugin loaded (swapping or only recording); returns
    the plugin's report, plus the subprocess's ``returncode`` and ``output`` tail.

    It runs in an empty directory holding a link to ``rootdir`` under its own name, so that tests which
    open their data files relative to their repository's root (``tests/lif.nir``) find them."""
    with tempfile.TemporaryDirectory(prefix="snnkern-peer-") as tmp:
        (Path(tmp) / rootdir.name).symlink_to(rootdir.resolve(), target_is_directory=True)
        report = Path(tmp) / "report.json"
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")  # the peer's own pytest configuration would put its checkout on sys.path
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(HERE)] + [p for p in [env.get("PYTHONPATH")] if p])
        env.update(SNNKERN_PEER_SWAP="1" if swap else "0", SNNKERN_PEER_BACKEND=backend,
                   SNNKERN_PEER_REPORT=str(report))
        env.setdefault("OMP_NUM_THREADS", "1")
        if package_dirs:
            env["SNNKERN_PEER_PACKAGE_DIRS"] = os.pathsep.join(package_dirs)
        env.update(extra_env or {})
        if backend == "triton" and "TRITON_INTERPRET" not in env and not _cuda_available():
            env["TRITON_INTERPRET"] = "1"
        cmd = [sys.executable, "-m", "pytest", *paths, "-p", "peer_swap_plugin", "-p", "no:cacheprovider",
               "-c", str(ini), "--rootdir", str(rootdir), "--continue-on-collection-errors", "-q", "-rN", "--tb=short", "-o", "console_output_style=classic"]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        if not report.exists():
            raise RuntimeError(f"pytest wrote no report (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        data = json.loads(report.read_text())
    data["returncode"] = proc.returncode
    data["output"] = (proc.stdout + proc.stderr)[-4000:]
    return data


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass
class Comparison:
    peer: str
    collected: int = 0
    passed_original: list = field(default_factory=list)
    passed_swapped: list = field(default_factory=list)
    regressions: list = field(default_factory=list)  # (nodeid, swapped outcome, message): passed original only
    refused: list = field(default_factory=list)  # regressions where snnkern refused an option by name
    known: list = field(default_factory=list)  # (nodeid, swapped outcome, reason): known differences, not counted
    not_counted: list = field(default_factory=list)  # (nodeid, original outcome, message)
    fixed_by_swap: list = field(default_factory=list)  # failed original, passed swapped
    swapped_layers: int = 0
    tests_with_swaps: int = 0
    left: dict = field(default_factory=dict)  # "class: reasons" -> count
    peer_file: str = ""
    peer_version: str = ""

    @property
    def ok(self) -> bool:
        return not self.regressions

    def summary(self, verbose: bool = True) -> str:
        lines = [f"{self.peer} {self.peer_version} ({self.peer_file}): {self.collected} collected, "
                 f"{len(self.passed_original)} passed on the originals, {len(self.passed_swapped)} of those passed "
                 f"swapped, {len(self.regressions)} failed swapped ({len(self.refused)} of them refused by name), "
                 f"{len(self.known)} known differences; "
                 f"{self.swapped_layers} layers swapped in {self.tests_with_swaps} tests"]
        for nodeid, outcome, message in self.regressions:
            lines.append(f"  FAILED SWAPPED {nodeid} [{outcome}]: {_last_line(message)}")
        for nodeid, outcome, reason in self.known:
            lines.append(f"  known difference, {outcome} swapped (not counted) {nodeid}: {reason}")
        for reason, n in sorted(self.left.items()):
            lines.append(f"  left as original ({n}x): {reason}")
        for nodeid in self.fixed_by_swap:
            lines.append(f"  failed original, passed swapped: {nodeid}")
        if verbose:
            by_outcome: dict = {}
            for nodeid, outcome, message in self.not_counted:
                by_outcome.setdefault(outcome, []).append((nodeid, message))
            for outcome, items in sorted(by_outcome.items()):
                lines.append(f"  not counted, {outcome} on the originals: {len(items)}")
                for nodeid, message in items:
                    lines.append(f"    {nodeid}: {_last_line(message)}")
        return "\n".join(lines)


def _last_line(message) -> str:
    text = [ln.strip() for ln in str(message or "").strip().splitlines() if ln.strip()]
    return text[-1][:300] if text else ""


def compare(peer: str, original: dict, swapped: dict, known_differences=None) -> Comparison:
    """Every test that passed on the originals must pass swapped, but for ``known_differences``."""
    known_differences = known_differences or {}
    c = Comparison(peer)
    info = swapped.get("peers", {}).get(peer, {})
    c.peer_file, c.peer_version = info.get("file") or "", info.get("version") or ""
    orig, swp = original["outcomes"], swapped["outcomes"]
    c.collected = sum(1 for e in orig.values() if e["outcome"] != "collect-error")
    for nodeid, entry in sorted(orig.items()):
        outcome = entry["outcome"]
        after = swp.get(nodeid, {"outcome": "missing", "message": "not run in the swapped session"})
        if outcome in PASS:
            c.passed_original.append(nodeid)
            if after["outcome"] in PASS:
                c.passed_swapped.append(nodeid)
            else:
                item = (nodeid, after["outcome"], after.get("message", ""))
                if nodeid in known_differences:
                    c.known.append((nodeid, after["outcome"], known_differences[nodeid]))
                    continue
                c.regressions.append(item)
                if REFUSAL in str(item[2]):
                    c.refused.append(item)
        else:
            c.not_counted.append((nodeid, outcome, entry.get("message", "")))
            if after["outcome"] in PASS:
                c.fixed_by_swap.append(nodeid)
    c.swapped_layers = sum(len(v) for v in swapped["swapped"].values())
    c.tests_with_swaps = sum(1 for k in swapped["swapped"] if k != "<collection>")
    for entries in swapped["left"].values():
        for foreign, why in entries:
            key = f"{foreign}: {'; '.join(why)}"
            c.left[key] = c.left.get(key, 0) + 1
    return c


def run_peer(peer: Peer, test_dir: Path, backend: str = "torch", timeout: float = 3600) -> Comparison:
    paths = selection(peer, test_dir)
    if not paths:
        raise RuntimeError(f"none of {peer.name}'s selected test files is in {test_dir} ({peer.select_env})")
    package_dirs = [f"{name}={test_dir.resolve()}" for name in peer.package_dirs if name == test_dir.name]
    kw = dict(rootdir=test_dir, package_dirs=package_dirs, timeout=timeout)
    original = run_pytest(paths, swap=False, **kw)
    swapped = run_pytest(paths, swap=True, backend=backend, **kw)
    check_import_source(peer, test_dir, swapped)
    return compare(peer.name, original, swapped, peer.known_differences)


def check_import_source(peer: Peer, test_dir: Path, report: dict) -> None:
    """The peer must come from its installation, not from a checkout around its test tree."""
    file = report.get("peers", {}).get(peer.name, {}).get("file")
    if file and Path(file).resolve().is_relative_to(test_dir.resolve().parent):
        raise RuntimeError(f"{peer.name} was imported from {file}, inside the checkout of its tests: point "
                           f"{peer.env} at a copy of the test tree (`python python_tests/peer_suites.py fetch`)")


# ---------------------------------------------------------------------------------------------
# fetching the test trees
# ---------------------------------------------------------------------------------------------

def _git(*args, cwd=None, git_dir=None, binary=False) -> str | bytes:
    cmd = ["git"] + ([f"--git-dir={git_dir}"] if git_dir else []) + list(args)
    out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return out.stdout if binary else out.stdout.decode()


def _git_dir(source: str, rev: str, tmp: Path) -> tuple[str, str]:
    """(git directory, commit) of ``source`` at ``rev``; a URL is fetched (depth 1) into ``tmp``."""
    if "://" in source or source.startswith("git@"):
        git_dir = tmp / "repo.git"
        _git("init", "--bare", "-q", str(git_dir))
        _git("fetch", "-q", "--depth", "1", source, rev, git_dir=git_dir)
        return str(git_dir), _git("rev-parse", "FETCH_HEAD^{commit}", git_dir=git_dir).strip()
    git_dir = _git("rev-parse", "--absolute-git-dir", cwd=source).strip()
    return git_dir, _git("rev-parse", f"{rev}^{{commit}}", git_dir=git_dir).strip()


def fetch(peer: Peer, dest: Path, source: str | None = None, rev: str | None = None) -> dict:
    """Copy ``peer.tree`` at ``rev`` out of the git repository ``source`` into ``dest/<peer>/``."""
    source, rev = source or peer.repo, rev or peer.rev
    with tempfile.TemporaryDirectory(prefix="snnkern-peer-fetch-") as tmp:
        git_dir, commit = _git_dir(source, rev, Path(tmp))
        entries = _git("ls-tree", "-r", "-z", commit, "--", peer.tree, git_dir=git_dir).split("\0")
        target = dest / peer.name
        if target.exists():
            shutil.rmtree(target)
        missing = []
        for entry in filter(None, entries):
            meta, path = entry.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind != "blob":
                continue
            try:
                data = _git("cat-file", "blob", sha, git_dir=git_dir, binary=True)
            except subprocess.CalledProcessError:  # a partial mirror may lack large blobs
                missing.append(path)
                continue
            out = target / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
    info = {"peer": peer.name, "source": source, "rev": rev, "commit": commit, "tree": peer.tree, "missing": missing}
    (target / "SOURCE.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="copy the peers' test trees out of git repositories")
    f.add_argument("dest", nargs="?", type=Path, default=None, help=f"default: {cache_dir()}")
    r = sub.add_parser("run", help="run the peers' suites on the originals and swapped, and compare")
    r.add_argument("--backend", default=os.environ.get("SNNKERN_PEER_BACKEND", "torch"))
    for peer in PEERS.values():
        f.add_argument(f"--{peer.name}", metavar="GIT", help=f"checkout, mirror or URL (default {peer.repo})")
        f.add_argument(f"--{peer.name}-rev", metavar="REV", help=f"default {peer.rev[:12]}: {peer.pinned_note}")
    f.add_argument("--peer", choices=list(PEERS), action="append", help="only this peer (repeatable)")
    r.add_argument("--peer", choices=list(PEERS), action="append", help="only this peer (repeatable)")
    args = parser.parse_args(argv)
    peers = [PEERS[p] for p in (args.peer or PEERS)]
    if args.command == "fetch":
        dest = args.dest or cache_dir()
        for peer in peers:
            info = fetch(peer, dest, getattr(args, peer.name), getattr(args, f"{peer.name}_rev"))
            print(f"{peer.name}: {info['tree']}/ at {info['commit']} -> {dest / peer.name / peer.tree}"
                  + (f" ({len(info['missing'])} file(s) absent in the source: {', '.join(info['missing'])})"
                     if info["missing"] else ""))
            print(f"  export {peer.env}={dest / peer.name / peer.tree}")
        return 0
    status = 0
    for peer in peers:
        test_dir = locate(peer)
        if test_dir is None:
            print(how_to_provide(peer))
            continue
        result = run_peer(peer, test_dir, backend=args.backend)
        print(result.summary())
        status |= not result.ok
    return status


if __name__ == "__main__":
    sys.exit(main())
