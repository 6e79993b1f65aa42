"""A real Flower app (``examples/flower``) run in Flower's simulation engine, captured by
CaptureStrategy, then attacked offline from its captures with ``gradleak attack --capture``."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from flower_helpers import example_env

import gradleak
from gradleak.experiments.captures import GLOBAL, CaptureStore
from gradleak.fl.functional import LocalSchedule, local_update, split_state

pytestmark = pytest.mark.timeout(600)

NODES, ROUNDS = 4, 2
MODEL = "gradleak_flower_example.task:Net"


def _tensors(arrays: dict) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def test_the_capture_holds_every_round_and_reply(simulated_capture: Path) -> None:
    with CaptureStore.open_existing(simulated_capture) as store:
        assert store.rounds() == list(range(1, ROUNDS + 1))
        for round_ in store.rounds():
            sent = store.get(round_, GLOBAL, "global")
            assert sent is not None
            assert sent.config["lr"] == 0.05 and sent.config["server-round"] == round_
            assert sorted(sent.config["nodes"]) == store.nodes(round_)
            assert len(store.nodes(round_)) == NODES
            for node in store.nodes(round_):
                reply = store.get(round_, node, "reply")
                assert reply is not None and reply.num_examples == 4
                assert store.truth(round_, node) is not None
        # what the strategy aggregated round 1 to is what it sent in round 2
        after_1 = store.get(1, GLOBAL, "aggregate")
        sent_2 = store.get(2, GLOBAL, "global")
        assert after_1 is not None and sent_2 is not None
        for name, value in after_1.arrays.items():
            assert (value == sent_2.arrays[name]).all()


def test_captured_pseudo_gradients_equal_the_simulators(simulated_capture: Path) -> None:
    """(w_t − w_k) / lr of each captured reply equals what gradleak's simulator's clients
    compute (``fl.functional.local_update``) from the same global model on the same batch with
    the schedule the server sent; and round 1's global model is the app's seeded model."""
    from gradleak_flower_example.task import initial_model

    net = initial_model(0)
    with CaptureStore.open_existing(simulated_capture) as store:
        first = store.get(1, GLOBAL, "global")
        assert first is not None
        for name, value in net.state_dict().items():
            assert torch.equal(torch.from_numpy(first.arrays[name]), value)
        checked = 0
        for round_ in store.rounds():
            sent = store.get(round_, GLOBAL, "global")
            assert sent is not None
            lr, batch = float(sent.config["lr"]), int(sent.config["batch-size"])
            schedule = LocalSchedule(int(sent.config["local-epochs"]), lr, batch, 0.0)
            before = _tensors(sent.arrays)
            net.load_state_dict(before)
            params, buffers = split_state(net)
            for node in store.nodes(round_):
                reply = store.get(round_, node, "reply")
                truth = store.truth(round_, node)
                assert reply is not None and truth is not None
                images, labels = (torch.from_numpy(a) for a in truth)
                expected, _ = local_update(net, params, buffers, images, labels, schedule)
                after = _tensors(reply.arrays)
                for name, value in expected.items():
                    captured = (before[name] - after[name]) / lr
                    scale = float(value.abs().max())
                    assert float((captured - value).abs().max()) <= 1e-5 * max(scale, 1.0), name
                checked += 1
        assert checked == NODES * ROUNDS


def _attack(store: Path, output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gradleak.cli", "attack", "--capture", str(store), "--model",
         MODEL, "-o", str(output), *args],
        env=example_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _node_of_partition(store_path: Path, partition: int) -> int:
    """The Flower node that held ``partition`` (node ids are drawn anew each run): the one whose
    round-1 batch is that partition's, so that the attacked images are the same every run."""
    from gradleak_flower_example.task import load_batch

    images, _ = load_batch(partition, NODES, 1, 4)
    with CaptureStore.open_existing(store_path) as store:
        for node in store.nodes(1):
            truth = store.truth(1, node)
            if truth is not None and torch.equal(torch.from_numpy(truth[0]), images):
                return node
    raise AssertionError(f"no node trained on partition {partition}")


def _flat_psnr(truth: torch.Tensor) -> float:
    """The PSNR a flat grey image scores against the truth: the floor an attack must beat."""
    return float(gradleak.score(torch.full_like(truth, 0.5), truth)["psnr_mean"])


def test_offline_attack_of_a_captured_round_reconstructs(
    simulated_capture: Path, tmp_path: Path
) -> None:
    node = _node_of_partition(simulated_capture, 0)
    with CaptureStore.open_existing(simulated_capture) as store:
        truth = store.truth(1, node)
    assert truth is not None
    done = _attack(simulated_capture, tmp_path / "run", "--round", "1", "--node", str(node),
                   "--set", "attack.iterations=300")  # fmt: skip
    assert done.returncode == 0, done.stderr
    for name in ("config.yaml", "metrics.json", "reconstruction.png", "tensors.pt"):
        assert (tmp_path / "run" / name).is_file()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    flat = _flat_psnr(torch.from_numpy(truth[0]))
    assert metrics["scored"] is True and metrics["threat"] == "server"
    assert metrics["capture"]["schedule"] == {"lr": 0.05, "steps": 1, "batch_size": None}
    assert metrics["psnr_mean"] > flat + 10, (metrics["psnr_mean"], flat)
    print(f"captured round 1, node {node}: PSNR {metrics['psnr_mean']:.2f} dB "
          f"(flat grey {flat:.2f} dB), SSIM {metrics['ssim_mean']:.3f}")  # fmt: skip


def test_peer_attack_from_captured_global_models(simulated_capture: Path, tmp_path: Path) -> None:
    node = _node_of_partition(simulated_capture, 0)
    with CaptureStore.open_existing(simulated_capture) as store:
        peers = [n for n in store.nodes(1) if n != node]
        truth = torch.cat([torch.from_numpy(store.truth(1, n)[0]) for n in peers])  # type: ignore[index]
    done = _attack(simulated_capture, tmp_path / "peer", "--round", "1", "--peer", str(node),
                   "--set", "attack.iterations=100")  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "peer" / "metrics.json").read_text())
    assert metrics["attack"] == "curious_client" and metrics["capture"]["peers"] == peers
    assert metrics["num_scored_images"] == len(truth)
    assert metrics["psnr_mean"] > _flat_psnr(truth)


def test_without_ground_truth_the_metrics_say_so(simulated_capture: Path, tmp_path: Path) -> None:
    store = tmp_path / "no-truth.sqlite"
    shutil.copy(simulated_capture, store)
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM ground_truth")
    with CaptureStore.open_existing(store) as captures:
        node = captures.nodes(2)[-1]
    done = _attack(store, tmp_path / "run", "--round", "2", "--node", str(node),
                   "--set", "attack.iterations=5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["scored"] is False and "no ground truth" in metrics["note"]
    assert "psnr_mean" not in metrics and math.isfinite(metrics["best_loss"])
    saved = torch.load(tmp_path / "run" / "tensors.pt", weights_only=True)
    assert saved["truth"] is None and saved["reconstruction"].shape == (4, 3, 32, 32)


def test_the_simulator_run_on_the_captured_batches_gives_the_captured_rounds(
    simulated_capture: Path,
) -> None:
    """gradleak's own Federation, from the app's seeded model, with each client holding the
    batch its Flower node trained on and the schedule the server sent, produces the captured
    uploads and the captured global models of both rounds (to about 1e-5)."""
    from gradleak_flower_example.task import initial_model

    from gradleak.config import apply_overrides, validate_config
    from gradleak.data.base import ImageDataset
    from gradleak.fl.build import build_federation
    from gradleak.fl.observations import RecordSpec

    with CaptureStore.open_existing(simulated_capture) as store:
        nodes = store.nodes(1)
        sent = {r: store.get(r, GLOBAL, "global") for r in (1, 2)}
        final = store.get(2, GLOBAL, "aggregate")
        replies = {(r, n): store.get(r, n, "reply") for r in (1, 2) for n in nodes}
        truths = [store.truth(r, n) for r in (1, 2) for n in nodes]
    assert sent[1] is not None and final is not None and all(t is not None for t in truths)
    images = torch.cat([torch.from_numpy(t[0]) for t in truths if t is not None])
    labels = torch.cat([torch.from_numpy(t[1]) for t in truths if t is not None])
    config = validate_config(
        apply_overrides(
            {},
            [
                f"federation.num_clients={NODES}", "federation.batch_size=4",
                "federation.protocol=fedavg", f"federation.local_lr={sent[1].config['lr']}",
                f"federation.local_epochs={sent[1].config['local-epochs']}",
                "federation.executor=loop", "defense.aggregator.name=mean",
            ],
        )
    )  # fmt: skip
    data = ImageDataset("captured", images, labels, 10)
    federation = build_federation(
        config, data, initial_model(0), record=RecordSpec.of(server_rounds=[0, 1])
    )
    for round_ in (1, 2):  # client k holds node k's batch of this round
        base = (round_ - 1) * NODES * 4
        federation.parts = [torch.arange(base + 4 * k, base + 4 * k + 4) for k in range(NODES)]
        federation.run_round()
    lr = float(sent[1].config["lr"])
    for round_ in (1, 2):
        start = sent[round_]
        assert start is not None
        for k, node in enumerate(nodes):
            reply = replies[(round_, node)]
            assert reply is not None
            upload = federation.server_observation(round_ - 1, k).update
            for name, value in upload.items():
                captured = (
                    torch.from_numpy(start.arrays[name]) - torch.from_numpy(reply.arrays[name])
                ) / lr
                assert torch.allclose(captured, value, rtol=1e-4, atol=1e-5), (round_, node, name)
    for name, value in federation.parameters.items():
        assert torch.allclose(torch.from_numpy(final.arrays[name]), value, atol=1e-6), name
