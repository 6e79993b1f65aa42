"""Simulator speed: 100 LeNet-5 clients, FedAvg with 5 local steps on 32 CIFAR-10 images each.

Prints seconds per round for every client executor, end to end (start-up included) and per
round after a warm-up round, then the same workload under Flower's simulation engine
(``flwr.simulation.start_simulation``, needs ``gradleak[flower]`` and ray) when it is installed.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_simulator.py [--rounds 3] [--no-flower]``
(on a shared CPU, one intra-op thread avoids oversubscription; note the load when you report).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from gradleak.config import ExperimentConfig, validate_config
from gradleak.data import load_dataset
from gradleak.experiments.threats import build_model_for
from gradleak.fl.build import build_federation
from gradleak.fl.executors import EXECUTORS

CLIENTS, IMAGES, STEPS, LR = 100, 32, 5, 0.05


def workload(executor: str, device: str) -> ExperimentConfig:
    return validate_config(
        {
            "device": device,
            "data": {"name": "cifar10", "split": "train", "max_images": CLIENTS * IMAGES},
            "model": {"name": "lenet5"},
            "federation": {
                "num_clients": CLIENTS,
                "batch_size": IMAGES,
                "protocol": "fedavg",
                "local_steps": STEPS,
                "local_lr": LR,
                "executor": executor,
            },
        }
    )


def bench_gradleak(executor: str, device: str, rounds: int) -> tuple[float, float]:
    """(end-to-end seconds per round incl. data, model and start-up; steady seconds per round)."""
    started = time.perf_counter()
    config = workload(executor, device)
    data = load_dataset(config.data, config.seed)
    federation = build_federation(config, data, build_model_for(config, data, torch.device(device)))
    federation.run_round()
    warm = time.perf_counter()
    federation.run(rounds - 1)
    _sync(device)
    done = time.perf_counter()
    return (done - started) / rounds, (done - warm) / max(1, rounds - 1)


def bench_flower(rounds: int) -> tuple[float, float]:
    """The same workload as Flower NumPyClients under Flower's (ray) simulation engine."""
    import flwr as fl
    import numpy as np

    from gradleak.fl.functional import LocalSchedule, local_update, split_state

    started = time.perf_counter()
    config = workload("loop", "cpu")
    data = load_dataset(config.data, config.seed)
    model = build_model_for(config, data, torch.device("cpu"))
    names = [name for name, _ in model.named_parameters()]
    schedule = LocalSchedule(STEPS, LR)

    class LeNetClient(fl.client.NumPyClient):
        def __init__(self, cid: int) -> None:
            self.images = data.images[cid * IMAGES : (cid + 1) * IMAGES]
            self.labels = data.labels[cid * IMAGES : (cid + 1) * IMAGES]

        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            params = {n: torch.from_numpy(p) for n, p in zip(names, parameters, strict=True)}
            update, _ = local_update(model, params, {}, self.images, self.labels, schedule)
            return [(params[n] - LR * update[n]).numpy() for n in names], IMAGES, {}

    stamps: list[float] = []

    class TimedFedAvg(fl.server.strategy.FedAvg):
        def aggregate_fit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            stamps.append(time.perf_counter())
            return super().aggregate_fit(*args, **kwargs)

    initial = [p.numpy() for p in split_state(model)[0].values()]
    fl.simulation.start_simulation(
        client_fn=lambda cid: LeNetClient(int(cid)).to_client(),
        num_clients=CLIENTS,
        config=fl.server.ServerConfig(num_rounds=rounds),
        strategy=TimedFedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=CLIENTS,
            min_available_clients=CLIENTS,
            initial_parameters=fl.common.ndarrays_to_parameters([np.asarray(p) for p in initial]),
        ),
        client_resources={"num_cpus": 1},
        ray_init_args={"num_cpus": os.cpu_count(), "include_dashboard": False},
    )
    done = time.perf_counter()
    steady = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    return (done - started) / rounds, steady


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-flower", action="store_true")
    args = parser.parse_args()
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, load {os.getloadavg()}")
    print(f"{'engine':<16}{'s/round end-to-end':>20}{'s/round steady':>18}")
    for name in EXECUTORS.names():
        total, steady = bench_gradleak(name, args.device, args.rounds)
        print(f"{'gradleak ' + name:<16}{total:>20.2f}{steady:>18.2f}", flush=True)
    if not args.no_flower:
        try:
            total, steady = bench_flower(args.rounds)
        except ImportError as exc:
            print(f"flower: not measured ({exc}); pip install 'gradleak[flower]' and ray")
        else:
            print(f"{'flower (ray)':<16}{total:>20.2f}{steady:>18.2f}")


if __name__ == "__main__":
    main()
