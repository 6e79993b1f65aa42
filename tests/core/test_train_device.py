"""``gradleak train`` resolves ``--device auto`` like ``gradleak run`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradleak.cli import main

DEMO = str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")


def test_train_with_device_auto_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "train"
    argv = [
        "gradleak",
        "train",
        DEMO,
        "--device",
        "auto",
        "--output",
        str(out),
        "--set",
        "federation.rounds=1",
        "--set",
        "model.width=4",
        "--set",
        "federation.batch_size=2",
    ]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["test_accuracy"]) == 1
