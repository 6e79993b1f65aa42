"""What the federation hands each party is built through the threat's capabilities: labels,
updated BatchNorm buffers, sample counts and the local schedule reach an attacker only when
granted, and its model is never the federation's own module."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import torch
from federation_helpers import config_with, synthetic_data
from torch import Tensor, nn

from gradleak.attacks.regularizers import reference_statistics
from gradleak.attacks.targets import from_global_models, from_upload
from gradleak.errors import CapabilityError
from gradleak.experiments.threats import build_model_for, capabilities_of
from gradleak.experiments.threats.server import curious_server
from gradleak.fl.build import build_federation
from gradleak.fl.observations import RecordSpec
from gradleak.fl.simulation import Federation

VICTIM = 1


def federation(*overrides: str) -> Federation:
    """A 4-client federation that ran one round with the server recording it."""
    config = config_with("federation.batch_size=8", *overrides)
    data = synthetic_data()
    model = build_model_for(config, data, torch.device("cpu"))
    fed = build_federation(
        config, data, model, capabilities_of(config), RecordSpec.of(server_rounds=[0])
    )
    fed.run(1)
    return fed


def walk(
    value: object, path: str = "", seen: set[int] | None = None
) -> Iterator[tuple[str, object]]:
    """Every (path, value) reachable from ``value`` through dataclass fields, properties of
    the attack target, mappings, sequences and a module's tensors."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    yield path, value
    if isinstance(value, nn.Module):
        for name, tensor in [*value.named_parameters(), *value.named_buffers()]:
            yield from walk(tensor, f"{path}.{name}", seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name), f"{path}.{f.name}", seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}[{key!r}]", seen)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]", seen)


def holds(tensor: Tensor, labels: Tensor) -> bool:
    """Whether ``tensor`` equals ``labels`` or holds them as a run of consecutive values."""
    if tensor.shape == labels.shape and torch.equal(tensor.to(labels.dtype), labels):
        return True
    if tensor.is_floating_point() or tensor.is_complex():
        return False
    flat, n = tensor.flatten(), labels.numel()
    return any(torch.equal(flat[i : i + n], labels) for i in range(flat.numel() - n + 1))


def label_leaks(handed: object, labels: Tensor) -> list[str]:
    leaks = []
    for path, value in walk(handed):
        if (path.rsplit(".", 1)[-1] in {"labels", "granted_labels"} and value is not None) or (
            isinstance(value, Tensor) and holds(value.detach(), labels)
        ):
            leaks.append(path)
    return leaks


def test_a_server_without_labels_finds_them_nowhere_in_what_it_is_handed() -> None:
    fed = federation()
    truth = fed.ground_truth(0, [VICTIM])[1]
    assert len(set(truth.tolist())) > 1, "labels must not be constant for the check to bite"
    observation = fed.server_observation(0, VICTIM)
    target = from_upload(observation)
    assert label_leaks(observation, truth) == []
    assert label_leaks(target, truth) == []


def test_a_server_granted_labels_gets_the_victims_own() -> None:
    fed = federation("threat.knows_labels=true")
    truth = fed.ground_truth(0, [VICTIM])[1]
    observation = fed.server_observation(0, VICTIM)
    assert observation.labels is not None and torch.equal(observation.labels, truth)
    target = from_upload(observation)
    assert target.labels is not None and torch.equal(target.labels, truth)


def test_no_upload_carries_labels() -> None:
    fed = federation("threat.knows_labels=true")
    outcome = fed.run_round()
    truth = torch.cat([fed.ground_truth(1, [k])[1] for k in outcome.order])
    for upload in outcome.uploads:
        assert label_leaks(upload, fed.ground_truth(1, [upload.client_id])[1]) == []
    assert label_leaks(outcome, truth) == []


def test_knows_buffers_hands_the_victims_updated_buffers_to_batchnorm_matching() -> None:
    fed = federation("threat.knows_buffers=true", "federation.protocol=fedsgd")
    observation = fed.server_observation(0, VICTIM)
    assert observation.updated_buffers is not None
    name = "1.running_mean"
    assert not torch.equal(observation.updated_buffers[name], observation.buffers[name])
    target = from_upload(observation)
    assert target.observed_buffers is observation.updated_buffers
    # One local step: the buffers give the victim batch's own statistics at the first BatchNorm.
    images, _ = fed.ground_truth(0, [VICTIM])
    conv = torch.nn.functional.conv2d(
        images, target.parameters["0.weight"], target.parameters["0.bias"], padding=1
    )
    observed = reference_statistics(target.model, target.buffers, target.observed_buffers)
    population = reference_statistics(target.model, target.buffers)
    torch.testing.assert_close(observed["1"][0], conv.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(population["1"][0], conv.mean(dim=(0, 2, 3)), atol=1e-3)


def test_without_knows_buffers_no_updated_buffers_are_handed_over() -> None:
    fed = federation()
    observation = fed.server_observation(0, VICTIM)
    assert observation.updated_buffers is None
    assert from_upload(observation).observed_buffers is None


def test_without_knows_num_samples_the_batch_size_is_hidden_and_the_target_refused() -> None:
    fed = federation("threat.knows_num_samples=false")
    observation = fed.server_observation(0, VICTIM)
    assert observation.num_samples is None and observation.protocol.batch_size is None
    with pytest.raises(CapabilityError, match="knows_num_samples"):
        from_upload(observation)
    assert from_upload(federation().server_observation(0, VICTIM)).num_images == 8


def test_without_knows_local_hparams_the_schedule_is_hidden() -> None:
    fedavg = federation("threat.knows_local_hparams=false").server_observation(0, VICTIM)
    assert fedavg.schedule is None and fedavg.protocol.schedule is None
    with pytest.raises(CapabilityError, match="knows_local_hparams"):
        from_upload(fedavg)


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        (["threat.knows_num_samples=false"], "knows_num_samples"),
        (["threat.knows_local_hparams=false", "federation.protocol=fedavg"], "knows_local_hparams"),
    ],
)
def test_the_server_threat_refuses_what_it_cannot_know_before_any_work(
    overrides: list[str], missing: str
) -> None:
    config = config_with("threat.attacker=server", "data.name=no_such_data_set", *overrides)
    with pytest.raises(CapabilityError, match=missing):
        curious_server(config, torch.device("cpu"))


def test_fedsgd_replays_without_the_local_hparams() -> None:
    """FedSGD's pseudo-gradient is the gradient whatever the rate: the hidden-schedule replay
    of the true batch reproduces the observed upload."""
    fed = federation("threat.knows_local_hparams=false", "federation.protocol=fedsgd")
    target = from_upload(fed.server_observation(0, VICTIM))
    images, labels = fed.ground_truth(0, [VICTIM])
    replayed = target.update_model(target.parameters, target.buffers, images, labels, False)
    for name, value in target.observed_update.items():
        torch.testing.assert_close(replayed[name], value, atol=1e-5, rtol=1e-4)


def test_the_attacks_model_is_not_the_federations_module() -> None:
    fed = federation()
    target = from_upload(fed.server_observation(0, VICTIM))
    assert target.model is not fed.model
    live = {t.data_ptr() for t in [*fed.model.parameters(), *fed.model.buffers()]}
    assert not live & {t.data_ptr() for t in [*target.model.parameters(), *target.model.buffers()]}
    fed.model.train(True)
    target.model.eval()
    handle = target.model.register_forward_hook(lambda *_: None)
    assert fed.model.training and not fed.model._forward_hooks
    handle.remove()


def test_inverting_gradients_matches_batchnorm_statistics_to_the_observed_buffers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gradleak.attacks.inverting_gradients as ig
    from gradleak.config import AttackConfig

    seen: list[object] = []

    def recording(model: nn.Module, buffers: dict, observed_buffers: dict | None = None) -> dict:
        seen.append(observed_buffers)
        return reference_statistics(model, buffers, observed_buffers)

    monkeypatch.setattr(ig, "reference_statistics", recording)
    fed = federation("threat.knows_buffers=true", "threat.knows_labels=true")
    target = from_upload(fed.server_observation(0, VICTIM))
    config = AttackConfig(
        name="inverting_gradients", iterations=1, labels="given", options={"bn_weight": 0.1}
    )
    ig.InvertingGradients(config).reconstruct(target)
    assert seen == [target.observed_buffers] and seen[0] is not None


def peer_federation(*overrides: str) -> Federation:
    """The same federation, with client 0 recorded as a curious peer."""
    config = config_with("federation.batch_size=8", *overrides)
    data = synthetic_data()
    model = build_model_for(config, data, torch.device("cpu"))
    fed = build_federation(config, data, model, capabilities_of(config), RecordSpec.of(peers=[0]))
    fed.run(1)
    return fed


def test_a_peer_without_labels_holds_only_its_own() -> None:
    fed = peer_federation()
    history = fed.client_history(0)
    observation = history.round(0)
    assert observation.granted_labels is None
    assert observation.own_labels is not None
    assert torch.equal(observation.own_labels, fed.ground_truth(0, [0])[1])
    peers = [k for k in sorted(fed.batches[0]) if k != 0]
    target = from_global_models(history)
    assert target.labels is None
    for k in peers:
        truth = fed.ground_truth(0, [k])[1]
        if torch.equal(truth, observation.own_labels):
            continue  # the peer's labels happen to be the attacker's own: nothing to tell apart
        assert label_leaks(history, truth) == []
        assert label_leaks(target, truth) == []


def test_a_peer_granted_labels_gets_its_peers_from_the_observation() -> None:
    fed = peer_federation("threat.knows_labels=true")
    observation = fed.client_history(0).round(0)
    peers = [k for k in sorted(fed.batches[0]) if k != 0]
    assert observation.granted_labels is not None and sorted(observation.granted_labels) == peers
    target = from_global_models(fed.client_history(0))
    assert target.labels is not None
    assert torch.equal(target.labels, fed.ground_truth(0, peers)[1])
