"""The same sweep gives the same metrics on the local pool and on a local Ray cluster."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradleak.errors import ConfigError
from gradleak.experiments.backends import BackendOptions
from gradleak.experiments.backends.sizing import RunResources
from gradleak.experiments.store import ResultStore
from gradleak.experiments.sweep import Sweep, expand
from gradleak.experiments.sweep_run import run_sweep

pytest.importorskip("ray")

TINY = {
    "data": {"name": "samples", "image_size": 32},
    "model": {"name": "lenet_dlg"},
    "attack": {"name": "inverting_gradients", "iterations": 5},
    "metrics": {"lpips": False},
}
COMPARED = ("psnr_mean", "ssim_mean", "label_accuracy", "per_image")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Ray cluster started for this test and stopped by process group, not by name."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    # A throw-away cluster on this machine: no token auth, so a token file left in ~/.ray by
    # some other cluster cannot make the driver and the head disagree.
    previous_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp}",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert head.poll() is None and time.monotonic() < deadline, "ray head did not start"
            time.sleep(0.5)
    yield address
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)
    if previous_auth is None:
        os.environ.pop("RAY_AUTH_MODE", None)
    else:
        os.environ["RAY_AUTH_MODE"] = previous_auth


def test_ray_and_local_give_the_same_metrics(ray_head: str, tmp_path: Path) -> None:
    runs = expand(TINY, {"federation.batch_size": [1, 2]}, {}, {})
    sweep = Sweep("bs", runs)
    metrics = {}
    for backend, address in (("local", "auto"), ("ray", ray_head)):
        store = tmp_path / f"{backend}.db"
        summary = run_sweep(
            sweep, store, backend, BackendOptions(workers=2, address=address), tmp_path / backend
        )
        assert summary.done == 2, backend
        with ResultStore.open_existing(store) as db:
            metrics[backend] = {
                r.id: {k: (r.metrics or {}).get(k) for k in COMPARED} for r in db.runs()
            }
    assert metrics["ray"] == metrics["local"]


def test_an_address_that_does_not_answer_leaves_the_store_untouched(tmp_path: Path) -> None:
    store = tmp_path / "r.db"
    sweep_runs = expand(TINY, {}, {}, {})
    with pytest.raises(ConfigError, match="does not answer"):
        run_sweep(
            Sweep("x", sweep_runs), store, "ray", BackendOptions(address=f"127.0.0.1:{free_port()}")
        )
    assert not store.exists()


@pytest.mark.parametrize(
    ("set_", "resources", "message"),
    [
        ({"device": "cuda"}, RunResources(gpus_per_run=0.25), "device cuda but the Ray cluster"),
        ({}, RunResources(gpus_per_run=0.25), "one run needs 1 CPU and 0.25 GPU"),
    ],
)
def test_a_gpu_sweep_on_a_cluster_without_gpus_is_refused_before_the_store(
    ray_head: str, tmp_path: Path, set_: dict[str, str], resources: RunResources, message: str
) -> None:
    store = tmp_path / "r.db"
    sweep = Sweep("gpu", expand(TINY, {}, {}, set_))
    options = BackendOptions(address=ray_head, resources=resources)
    with pytest.raises(ConfigError, match=message):
        run_sweep(sweep, store, "ray", options)
    assert not store.exists()
