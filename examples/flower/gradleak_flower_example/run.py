"""Run the example in Flower's simulation engine: 4 nodes, 2 rounds, captured to STORE.

python -m gradleak_flower_example.run flower-capture.sqlite
"""

from __future__ import annotations

import sys

from flwr.simulation import run_simulation

from gradleak.experiments.captures import CaptureStore
from gradleak_flower_example.client_app import make_client_app
from gradleak_flower_example.server_app import make_server_app

NODES = 4


def simulate(store: str, rounds: int = 2, truth: bool = True) -> None:
    run_simulation(
        server_app=make_server_app(store, rounds),
        client_app=make_client_app(store if truth else None),
        num_supernodes=NODES,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )


if __name__ == "__main__":
    store = sys.argv[1] if len(sys.argv) > 1 else "flower-capture.sqlite"
    simulate(store)
    with CaptureStore.open_existing(store) as captures:
        for round_ in captures.rounds():
            print(f"round {round_}: nodes {' '.join(map(str, captures.nodes(round_)))}")
