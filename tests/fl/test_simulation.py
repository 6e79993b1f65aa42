"""The federation simulator: executors, averaging, sampling, BatchNorm, secure aggregation,
Byzantine clients."""

from __future__ import annotations

import pytest
import torch
from federation_helpers import config_with, federation_for, synthetic_data

from gradleak.fl.executors import ClientJob, LoopExecutor, VmapExecutor, plain_training
from gradleak.fl.functional import batch_loss
from gradleak.fl.observations import RecordSpec


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-4) -> bool:
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=1e-4) for k in a)


def test_executors_give_the_same_updates_and_buffers() -> None:
    federation = federation_for(config_with())
    data = federation.data
    jobs = [
        ClientJob(data.images[i : i + 4], data.labels[i : i + 4], federation.buffers, torch.Generator())
        for i in (0, 8, 16)
    ]
    schedule = federation.rules.protocol.schedule
    reference = LoopExecutor(plain_training)(federation.model, federation.parameters, jobs, schedule)
    for executor in (VmapExecutor(), VmapExecutor(chunk=2)):
        batched = executor(federation.model, federation.parameters, jobs, schedule)
        for (ref_update, ref_buf), (update, buf) in zip(reference, batched, strict=True):
            assert _close(ref_update, update) and _close(ref_buf, buf)


def test_vmap_and_loop_federations_reach_the_same_model() -> None:
    loop = federation_for(config_with())
    vmapped = federation_for(config_with("federation.executor=vmap"))
    loop.run(2)
    vmapped.run(2)
    assert _close(loop.parameters, vmapped.parameters, atol=1e-4)


def test_weighted_averaging_is_the_sample_weighted_mean() -> None:
    federation = federation_for(config_with("federation.protocol=fedsgd"))
    outcome = federation.run_round()
    counts = {u.client_id: len(federation.parts[u.client_id]) for u in outcome.uploads}
    assert len(set(counts.values())) > 1, "the partition should give unequal clients"
    total = sum(counts.values())
    lr = federation.rules.protocol.schedule.lr
    for name, start in outcome.parameters.items():
        mean = sum(counts[u.client_id] * u.update[name] for u in outcome.uploads) / total
        torch.testing.assert_close(outcome.next_parameters[name], start - lr * mean)
    assert outcome.total_samples == total


def test_client_sampling_is_seeded_and_varies_by_round() -> None:
    config = config_with("federation.num_clients=8", "federation.clients_per_round=3")
    data = synthetic_data(96)
    first, second = federation_for(config, data), federation_for(config, data)
    draws = [first.sample_clients(r) for r in range(6)]
    assert draws == [second.sample_clients(r) for r in range(6)]
    assert all(len(d) == 3 and d == sorted(set(d)) for d in draws)
    assert len({tuple(d) for d in draws}) > 1
    assert [u.client_id for u in first.run_round().uploads] == draws[0]


def test_averaged_buffers_are_the_weighted_mean_of_the_clients() -> None:
    federation = federation_for(config_with())
    before = dict(federation.buffers)
    outcome = federation.run_round()
    counts = torch.tensor([float(len(federation.parts[u.client_id])) for u in outcome.uploads])
    weights = counts / counts.sum()
    name = next(k for k in before if k.endswith("running_mean"))
    expected = sum(w * u.buffers[name] for w, u in zip(weights, outcome.uploads, strict=True))
    torch.testing.assert_close(federation.buffers[name], expected)
    assert not torch.equal(federation.buffers[name], before[name])


def test_local_buffers_stay_with_their_clients() -> None:
    federation = federation_for(config_with("federation.bn_buffers=local"), record=RecordSpec.of(peers=[0]))
    before = dict(federation.buffers)
    federation.run(2)
    assert all(torch.equal(federation.buffers[k], before[k]) for k in before)
    assert set(federation.local_buffers) == {0, 1, 2, 3}
    name = next(k for k in before if k.endswith("running_mean"))
    assert not torch.equal(federation.local_buffers[0][name], federation.local_buffers[1][name])


def test_secure_aggregation_hides_uploads_and_changes_nothing_else() -> None:
    record = RecordSpec.of(server_rounds=[1])
    plain = federation_for(config_with(), record=record)
    secure = federation_for(config_with("defense.secure_aggregation=true"), record=record)
    plain.run(2)
    secure.run(2)
    with pytest.raises(LookupError, match="no upload the server can see"):
        secure.server_observation(1, 0)
    assert all(plain.server_observation(1, k).update for k in range(4))
    assert _close(plain.parameters, secure.parameters, atol=1e-6)


def _loss(federation) -> float:  # type: ignore[no-untyped-def]
    data = federation.data
    federation.model.eval()
    return float(batch_loss(federation.model, federation.parameters, federation.buffers, data.images, data.labels))


def test_sign_flip_breaks_the_mean_but_not_krum() -> None:
    common = [
        "federation.num_clients=7", "model.name=mlp", "model.width=1", "federation.protocol=fedsgd",
        "federation.local_lr=0.5", "federation.batch_size=8", "data.partition.scheme=iid",
        "federation.byzantine=[{name: sign_flip, clients: [0, 1], options: {scale: 4.0}}]",
    ]
    data = synthetic_data(112)
    results = {}
    for rule in ("mean", "krum"):
        federation = federation_for(config_with(*common, f"defense.aggregator.name={rule}",
                                                "defense.aggregator.num_byzantine=2"), data)
        start = _loss(federation)
        federation.run(8)
        results[rule] = _loss(federation) - start
    assert results["mean"] > 0 > results["krum"]
