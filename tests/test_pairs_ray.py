"""`--executor ray`: the same bytes as the local executor, resume after a killed driver, a retried
worker, and a one-line error without Ray. One local Ray (2 CPUs) serves the whole module."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from occlusion_synth.pairs import PairsConfig, RayExecutor, generate_pairs
from occlusion_synth.pairs.sample import build_occluder

from test_generate import face_crops, tree_bytes, write_rafdb  # noqa: E402  (tests/ is on sys.path)

ray = pytest.importorskip("ray")
REPO = Path(__file__).resolve().parents[1]
KW = dict(src="rafdb", landmarks="aligned", categories=("block", "hand"), size=48, seed=5)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray with 2 CPUs, its temp files under the test's tmp folder; yields its address."""
    old = os.environ.get("PYTHONPATH")
    # workers (started by this Ray) import the worktree's package and this test module
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), str(REPO / "tests"), old) if p)
    temp = tmp_path_factory.mktemp("ray")
    os.environ[_MARKER] = str(temp / "worker-died")
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(temp))
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()
        os.environ.pop(_MARKER, None)
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def raf(photos, tmp_path_factory) -> Path:
    return write_rafdb(tmp_path_factory.mktemp("raf"), face_crops(photos, 56), 24)


@pytest.fixture(scope="module")
def local_out(raf, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "o"
    generate_pairs(PairsConfig(root=str(raf), out=str(out), **KW))
    return out


def test_ray_output_is_byte_identical_to_local(ray_cluster, raf, local_out, tmp_path):
    out = tmp_path / "ray"
    summary = generate_pairs(PairsConfig(root=str(raf), out=str(out), workers=2, chunksize=2, **KW),
                             executor=RayExecutor(workers=2, chunksize=2))
    assert summary.new_pairs == summary.counts["pairs"] > 0
    assert tree_bytes(out) == tree_bytes(local_out)


def test_ray_webdataset_shards_are_byte_identical_to_local(ray_cluster, raf, tmp_path):
    kw = dict(KW, root=str(raf), output="webdataset", shard_size=5)
    generate_pairs(PairsConfig(out=str(tmp_path / "local"), **kw))
    generate_pairs(PairsConfig(out=str(tmp_path / "ray"), workers=2, **kw), executor=RayExecutor(workers=2))

    def shards(out):
        return {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".tar" or p.name == "index.json"}

    assert len(shards(tmp_path / "ray")) == 7 and shards(tmp_path / "ray") == shards(tmp_path / "local")


_MARKER = "OCCSYNTH_TEST_DIE_ONCE"  # set by the ray_cluster fixture, so its workers see it


class _Occluder:
    """The real occluder, whose process exits at its third call once per module (``die``: a worker
    lost mid-task) or which sleeps at each call (``sleep``: a run slow enough to kill midway)."""

    def __init__(self, cfg, die: bool = False, sleep: float = 0.0):
        self.inner, self.calls, self.die, self.sleep = build_occluder(cfg), 0, die, sleep

    def get_params(self, image, landmarks, rng):
        self.calls += 1
        marker = Path(os.environ[_MARKER])
        if self.die and self.calls == 3 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        time.sleep(self.sleep)
        return self.inner.get_params(image, landmarks, rng)

    def apply(self, image, params):
        return self.inner.apply(image, params)


def dies_once(cfg):
    return _Occluder(cfg, die=True)


def slow(cfg):
    return _Occluder(cfg, sleep=0.15)


def test_a_worker_that_dies_is_restarted_and_its_task_retried(ray_cluster, raf, local_out, tmp_path):
    out = tmp_path / "ray"
    generate_pairs(PairsConfig(root=str(raf), out=str(out), **KW), occluder_factory=dies_once,
                   executor=RayExecutor(workers=2, chunksize=2))
    assert Path(os.environ[_MARKER]).is_file()  # a worker process really died mid-task
    assert tree_bytes(out) == tree_bytes(local_out)


def test_killed_driver_resumes_to_the_same_output(ray_cluster, raf, local_out, tmp_path):
    out = tmp_path / "ray"
    journal = out / ".occsynth" / "journal.jsonl"
    code = ("import ray, test_pairs_ray as t; from occlusion_synth.pairs import PairsConfig, RayExecutor, "
            f"generate_pairs; ray.init(address={ray_cluster!r}, log_to_driver=False); "
            f"generate_pairs(PairsConfig(root={str(raf)!r}, out={str(out)!r}, **t.KW), occluder_factory=t.slow, "
            "executor=RayExecutor(workers=1, chunksize=1))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.is_file() and journal.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)  # the driver dies mid-run; its actor goes with it
    finally:
        proc.wait(30)
    done = journal.read_bytes().count(b"\n")
    assert 3 <= done < 24 and not (out / "manifest.csv").exists()
    summary = generate_pairs(PairsConfig(root=str(raf), out=str(out), **KW), executor=RayExecutor(workers=2))
    assert summary.resumed_samples >= 3 and summary.new_samples + summary.resumed_samples == 24
    assert tree_bytes(out) == tree_bytes(local_out)


def test_cli_executor_ray_without_ray_is_one_line(raf, tmp_path, monkeypatch):
    from occlusion_synth.cli import cli

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    res = CliRunner().invoke(cli, ["generate", "--src", "rafdb", "--root", str(raf), "--out", str(tmp_path / "o"),
                                   "--executor", "ray", "--no-progress"])
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "pip install occlusion-synth[ray]" in res.output and "--executor" in res.output
    assert not (tmp_path / "o").exists()  # nothing written
    res = CliRunner().invoke(cli, ["generate", "--src", "rafdb", "--root", str(raf), "--out", str(tmp_path / "o"),
                                   "--ray-address", "auto", "--no-progress"])
    assert res.exit_code == 2 and "--ray-address" in res.output and "only used with" in res.output
