"""The whole pipeline on real images through the CLI: the attack must really reconstruct."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gradleak.cli import main
from gradleak.metrics import psnr

DEMO = str(Path(__file__).resolve().parents[2] / "configs" / "demo.yaml")
CONTRACT_KEYS = {
    "attack",
    "threat",
    "psnr_mean",
    "ssim_mean",
    "lpips_mean",
    "label_accuracy",
    "per_image",
    "num_scored_images",
    "iterations",
    "wall_seconds",
    "seed",
}


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.argv", ["gradleak", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return int(info.value.code or 0)


def random_image_psnr(truth: torch.Tensor) -> float:
    """What an attacker scores by guessing uniform noise: the floor to beat."""
    noise = torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))
    return float(psnr(noise, truth).mean())


def test_cli_run_reconstructs_a_real_photo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    code = run_cli(
        [
            "run",
            DEMO,
            "--output",
            str(out),
            "--set",
            "data.max_images=1",
            "--set",
            "federation.batch_size=1",
            "--set",
            "attack.iterations=200",
            "--set",
            "model.width=8",
        ],
        monkeypatch,
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= CONTRACT_KEYS
    assert metrics["num_scored_images"] == 1
    assert metrics["label_accuracy"] == 1.0
    assert (out / "reconstruction.png").stat().st_size > 1000
    assert (out / "config.yaml").is_file()
    tensors = torch.load(out / "tensors.pt")
    floor = random_image_psnr(tensors["truth"])
    assert metrics["psnr_mean"] > floor + 6, (metrics["psnr_mean"], floor)
    recomputed = float(psnr(tensors["reconstruction"], tensors["truth"]).mean())
    assert recomputed == pytest.approx(metrics["psnr_mean"], abs=1e-3)
