"""``gradleak analyze``'s geometry sources: the old isotropic model, a far-off victim, the shape
measured on real rounds, the recorded real round against the simulator, config refusals."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gradleak.config import load_config
from gradleak.errors import ConfigError
from gradleak.experiments.geometry import OracleEstimate, Shape, SyntheticGeometry
from gradleak.experiments.malicious_analysis import Setting, analyse, rank_shift
from gradleak.experiments.recorded_geometry import RecordedGeometry
from gradleak.experiments.threats.malicious import malicious_peer

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "malicious_client.yaml"
torch.set_num_threads(1)


def old_isotropic_round(
    h: int, spread: float, estimate_error: float, d: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The analysis' model before geometry sources, written out: a common direction plus
    independent per-client parts, then the victim estimate's error (honest uploads, own
    update, victim estimate)."""
    common = torch.randn(d, generator=generator, dtype=torch.float64) / d**0.5
    parts = torch.randn((h + 1, d), generator=generator, dtype=torch.float64) / d**0.5
    clean = common + spread * parts
    torch.randn((h, d), generator=generator, dtype=torch.float64)  # zero-noise DP draw
    per_coordinate = torch.full((d,), spread / d**0.5, dtype=torch.float64)
    error = (
        estimate_error * per_coordinate * torch.randn(d, generator=generator, dtype=torch.float64)
    )
    return clean[:h], clean[h], clean[0] + error


def test_isotropic_source_is_the_old_model_and_gives_its_result() -> None:
    source = SyntheticGeometry(spread=0.7, estimate_error=0.4, dimension=300)
    geometry = next(iter(source.rounds(7, 3, 5)))
    uploads, own, victim = old_isotropic_round(7, 0.7, 0.4, 300, torch.Generator().manual_seed(5))
    torch.testing.assert_close(geometry.uploads, uploads)
    torch.testing.assert_close(geometry.estimate.centre, own)
    torch.testing.assert_close(geometry.estimate.victim, victim)
    krum = analyse(Setting("krum", 8, 1), "malicious", trials=10, source=SyntheticGeometry())
    assert krum.victim_weight == pytest.approx(1.0)  # the 1.000 analyze has always printed


def test_a_far_off_victim_defeats_krum_steering() -> None:
    setting = Setting("krum", 8, 1)
    central = analyse(setting, "malicious", 20, source=SyntheticGeometry(victim_offset=1.0))
    far = analyse(setting, "malicious", 20, source=SyntheticGeometry(victim_offset=3.0))
    assert central.victim_weight > 0.9
    assert far.victim_weight < 0.2
    # in few dimensions the least central victim loses too, the most central one wins
    edge = SyntheticGeometry(rank=8, victim_rank=6, estimate_error=0.3)
    middle = SyntheticGeometry(rank=8, victim_rank=0, estimate_error=0.3)
    assert analyse(setting, "malicious", 20, source=edge).victim_weight < 0.3
    assert analyse(setting, "malicious", 20, source=middle).victim_weight > 0.7


def test_an_oracle_estimate_is_the_geometrys_ceiling() -> None:
    """With the victim's true update as the estimate, the estimate's error no longer matters
    (same rounds, same outcome) and steering succeeds at least as often as with a poor one."""
    setting = Setting("krum", 8, 1)
    poor = SyntheticGeometry(rank=8, estimate_error=3.0)
    good = SyntheticGeometry(rank=8, estimate_error=0.1)
    attacker = analyse(setting, "malicious", 30, source=poor).victim_weight
    ceiling = analyse(setting, "malicious", 30, source=OracleEstimate(poor)).victim_weight
    assert ceiling == analyse(setting, "malicious", 30, source=OracleEstimate(good)).victim_weight
    assert ceiling >= attacker + 0.2
    assert analyse(setting, "honest", 30, source=OracleEstimate(poor)).victim_weight == (
        analyse(setting, "honest", 30, source=poor).victim_weight
    )  # the honest attacker uses no estimate


def test_the_analysis_plays_the_configured_strategy_options() -> None:
    """``threat.strategy_options`` reach the analysed strategy: pushing the upload 50 honest
    distances behind the victim leaves the victim without its near neighbour."""
    source = SyntheticGeometry(rank=8, victim_rank=1, estimate_error=0.1)
    near = analyse(Setting("krum", 8, 1), "malicious", 20, source=source).victim_weight
    far = Setting("krum", 8, 1, strategy_options={"push": 50.0})
    assert analyse(far, "malicious", 20, source=source).victim_weight <= near - 0.3
    with pytest.raises(ConfigError, match="strategy_options"):
        analyse(Setting("krum", 8, 1, strategy_options={"nope": 1}), "malicious", 1)


def test_shape_measures_a_known_geometry() -> None:
    source = SyntheticGeometry(spread=0.8, rank=8, victim_offset=2.0, estimate_error=0.3)
    shapes = [
        Shape.of(g.clean, g.estimate.centre, g.estimate.victim) for g in source.rounds(7, 10, 0)
    ]
    assert sum(s.spread for s in shapes) / 10 == pytest.approx(0.8, rel=0.15)
    assert sum(s.victim_offset for s in shapes) / 10 == pytest.approx(2.0, rel=0.2)
    assert sum(s.estimate_error for s in shapes) / 10 == pytest.approx(0.3, rel=0.2)
    assert sum(s.victim_rank >= 5 for s in shapes) >= 8  # twice as far out as anyone
    assert 4 <= sorted(s.rank for s in shapes)[5] <= 16
    flat = Shape.of(*(lambda g: (g.clean, g.estimate.centre, g.estimate.victim))(
        next(iter(SyntheticGeometry().rounds(7, 1, 0)))))  # fmt: skip
    assert flat.rank > 500


def test_one_attacker_moves_the_median_by_at_most_one_rank() -> None:
    one = analyse(Setting("median", 8, 1), "malicious", 10)
    three = analyse(Setting("median", 8, 3), "malicious", 10)
    assert one.rank_shift is not None and three.rank_shift is not None
    assert one.rank_shift <= 1.0
    assert three.rank_shift > 1.0
    ties = torch.zeros(7, 5)
    assert rank_shift(ties, torch.zeros(5)) == 0.0  # equal to all: the median's own rank
    assert rank_shift(torch.arange(7.0)[:, None], torch.tensor([5.5])) == pytest.approx(2.5)


def test_recorded_round_predicts_the_simulator(data_root: Path) -> None:
    """Seed 0 steers Krum onto the victim, seed 1 does not (bench/results); the offline
    analysis on the recorded honest round must say the same as the simulator."""
    config = load_config(CONFIG)
    setting = Setting("krum", 8, 1)
    for seed in (0, 1):
        predicted = analyse(setting, "malicious", 1, seed, RecordedGeometry(config))
        run = malicious_peer(config.model_copy(update={"seed": seed}), torch.device("cpu"))
        measured = run.summary["stealth"][0]["victim_contribution"]
        assert predicted.victim_weight == pytest.approx(measured)
    assert {0.0, 1.0} == {
        analyse(setting, "malicious", 1, s, RecordedGeometry(config)).victim_weight for s in (0, 1)
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--geometry", "recorded"], "--geometry recorded needs --config CONFIG"),
        (["--geometry", "recorded", "--config", "configs/curious_client.yaml"],
         "needs threat.attacker=malicious_peer"),
        (["--geometry", "calibrated", "--config", str(CONFIG), "--set", "threat.victim=0"],
         "must be an honest client"),
        (["--geometry", "nowhere"], "unknown update geometry 'nowhere'"),
        (["--victim-offset", "0"], "--victim-offset > 0"),
        (["--estimate", "psychic"], "--estimate is attacker or oracle"),
    ],
)  # fmt: skip
def test_analyze_refuses_bad_geometry_requests_in_one_line(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gradleak.cli import main

    monkeypatch.chdir(CONFIG.parents[1])
    monkeypatch.setattr(sys, "argv", ["gradleak", "analyze", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    assert exit_.value.code == 2
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
