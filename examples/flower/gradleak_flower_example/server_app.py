"""The ServerApp: FedAvg, wrapped in gradleak's CaptureStrategy, which is all a server adds."""

from __future__ import annotations

from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from gradleak.integrations.flower import CaptureStrategy
from gradleak_flower_example.task import initial_model

TRAIN_CONFIG = {"lr": 0.05, "local-epochs": 1, "batch-size": 4}
"""What the server tells every node: the schedule an attack on a capture replays."""


def make_server_app(store: Path | str, rounds: int = 2, seed: int = 0) -> ServerApp:
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context) -> None:
        strategy = CaptureStrategy(FedAvg(fraction_train=1.0, fraction_evaluate=1.0), store=store)
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial_model(seed).state_dict()),
            num_rounds=rounds,
            train_config=ConfigRecord(dict(TRAIN_CONFIG)),
        )

    return app


app = make_server_app("flower-capture.sqlite")
