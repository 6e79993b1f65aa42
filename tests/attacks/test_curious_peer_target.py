"""The curious client's target: Δ_peers read off consecutive global models must equal the
(weighted) mean of the peers' true uploads, whatever the averaging and participation."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from gradleak.attacks.target import MultiRoundTarget, assume_local_lr, rounds_of
from gradleak.attacks.targets import from_global_models, peers_update
from gradleak.config import ExperimentConfig, validate_config
from gradleak.data import load_dataset
from gradleak.errors import ConfigError
from gradleak.experiments.threats import build_model_for, capabilities_of
from gradleak.experiments.threats.peer import curious_peer
from gradleak.fl.build import build_federation
from gradleak.fl.observations import RecordSpec
from gradleak.fl.simulation import Federation


def peer_config(**overrides: object) -> ExperimentConfig:
    raw: dict = {
        "data": {"name": "cifar10", "max_images": 12, "image_size": 16},
        "model": {"name": "lenet5", "activation": "sigmoid"},
        "federation": {
            "num_clients": 3,
            "batch_size": 2,
            "protocol": "fedavg",
            "local_steps": 2,
            "local_lr": 0.05,
            "server_lr": 0.7,
            "rounds": 1,
        },
        "threat": {"attacker": "peer", "attacker_client": 0},
        "attack": {"name": "curious_client"},
    }
    for key, value in overrides.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return validate_config(raw)


def simulate(config: ExperimentConfig, rounds: int) -> Federation:
    data = load_dataset(config.data, config.seed)
    model = build_model_for(config, data, torch.device("cpu"))
    record = RecordSpec.of(server_rounds=range(rounds), peers=[0])
    federation = build_federation(config, data, model, capabilities_of(config), record)
    federation.run(rounds)
    return federation


def true_peer_mean(
    federation: Federation, round_: int, attacker: int, weighted: bool
) -> dict[str, torch.Tensor]:
    peers = [
        federation.server_observation(round_, k)
        for k in federation.batches[round_]
        if k != attacker
    ]
    weights = torch.tensor(
        [float(len(federation.parts[u.client_id])) if weighted else 1.0 for u in peers]
    )
    weights = weights / weights.sum()
    return {
        k: sum(w * u.update[k] for w, u in zip(weights, peers, strict=True))
        for k in peers[0].update
    }  # type: ignore[misc]


def assert_close(derived: dict[str, torch.Tensor], truth: dict[str, torch.Tensor]) -> None:
    for name, value in truth.items():
        scale = float(value.abs().max()) + 1e-12
        assert float((derived[name] - value).abs().max()) / scale < 2e-2, name


@pytest.mark.parametrize("weighted", [False, True])
def test_peers_update_equals_the_mean_of_peers_uploads(data_root: object, weighted: bool) -> None:
    # 13 images over 3 clients: unequal sample counts, so weighting matters.
    config = peer_config(data__max_images=13, federation__weighted=weighted)
    federation = simulate(config, 1)
    record = federation.client_history(0).rounds[0]
    assert (record.total_samples is not None) == weighted
    derived = peers_update(record, config.federation.server_lr, config.federation.local_lr)
    assert derived.num_peers == 2
    assert_close(derived.update, true_peer_mean(federation, 0, 0, weighted))


def test_partial_participation_and_rounds_the_attacker_sat_out(data_root: object) -> None:
    config = peer_config(
        federation__num_clients=4, federation__clients_per_round=2, data__max_images=8
    )
    federation = simulate(config, 6)
    records = federation.client_history(0).rounds
    assert {r.own_update is None for r in records} == {True, False}, "seed must give both cases"
    for record in records:
        derived = peers_update(record, config.federation.server_lr, config.federation.local_lr)
        assert derived.num_peers == (1 if record.own_update is not None else 2)
        assert_close(derived.update, true_peer_mean(federation, record.round, 0, True))


def test_a_guessed_local_rate_only_rescales_the_target(data_root: object) -> None:
    config = peer_config()
    target = from_global_models(simulate(config, 1).client_history(0))
    guessed = assume_local_lr(target, 0.2)
    assert guessed.update_model.schedule.lr == 0.2
    for name, value in target.observed_update.items():
        torch.testing.assert_close(guessed.observed_update[name], value * 0.05 / 0.2)


def test_several_rounds_share_one_dummy_batch(data_root: object) -> None:
    config = peer_config(data__max_images=6, federation__rounds=3)
    target = from_global_models(simulate(config, 3).client_history(0))
    assert isinstance(target, MultiRoundTarget)
    assert [t.description["round"] for t in rounds_of(target)] == [0, 1, 2]
    assert {t.num_images for t in rounds_of(target)} == {4}


def test_scenario_scores_only_the_peers_images(data_root: object) -> None:
    config = peer_config()
    scenario = curious_peer(config, torch.device("cpu"))
    data = load_dataset(config.data, config.seed)
    own = simulate(config, 1).ground_truth(0, [0])[0]
    assert scenario.truth.images.shape[0] == scenario.target.num_images == 4
    for image in own:
        assert not (scenario.truth.images == image).flatten(1).all(1).any()
    for image in scenario.truth.images:
        assert (data.images == image).flatten(1).all(1).any()


def test_secure_aggregation_leaves_the_peer_attack_intact(data_root: object) -> None:
    plain = curious_peer(peer_config(), torch.device("cpu")).target
    secure = curious_peer(peer_config(defense__secure_aggregation=True), torch.device("cpu")).target
    assert not secure.capabilities.sees_individual_updates
    assert_close(secure.observed_update, plain.observed_update)


def test_the_replay_clips_like_the_peers_under_client_dp(data_root: object) -> None:
    """Client DP's clipping norm is public: replaying the peers' true images with it reproduces
    the clipped aggregate, while an unclipped replay (the norm is far below the updates') does not."""
    clip = [{"name": "clip_noise", "clip_norm": 0.05, "noise_multiplier": 0.0}]
    scenario = curious_peer(peer_config(defense__client=clip), torch.device("cpu"))
    target, truth = scenario.target, scenario.truth
    assert target.update_model.clip_norm == pytest.approx(0.05)
    args = (target.parameters, target.buffers, truth.images, truth.labels, False)
    observed = torch.cat([v.flatten() for v in target.observed_update.values()])

    def relative_error(replay: dict[str, torch.Tensor]) -> float:
        flat = torch.cat([replay[k].flatten() for k in target.observed_update])
        return float((flat - observed).norm() / observed.norm())

    # float32 global models: w_t − w_{t+1} keeps ~4 digits of these small clipped steps
    assert relative_error(target.update_model(*args)) < 1e-2
    assert relative_error(replace(target.update_model, clip_norm=None)(*args)) > 1.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"threat__attacker_client": 3}, "is not a client"),
        ({"federation__num_clients": 1}, "at least 2 clients"),
        ({"threat__round": 1}, "never run"),
        ({"federation__rounds": 2}, "same images each round"),
    ],
)
def test_impossible_peer_threats_are_config_errors(
    data_root: object, overrides: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        curious_peer(peer_config(**overrides), torch.device("cpu"))


def test_a_round_without_peers_is_a_config_error(data_root: object) -> None:
    federation = simulate(peer_config(), 1)
    record = replace(federation.client_history(0).rounds[0], num_participants=1)
    with pytest.raises(ConfigError, match="only participant"):
        peers_update(record, 1.0, 0.05)
