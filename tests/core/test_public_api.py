"""The public Python API (``gradleak.attack``, ``gradleak.score``): the README's example runs,
it reproduces ``gradleak run`` exactly, and it attacks models and updates gradleak never built."""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import gradleak
from gradleak.config import validate_config
from gradleak.errors import ConfigError
from gradleak.experiments.preflight import preflight
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.threats import THREATS
from gradleak.metrics import psnr
from gradleak.runtime import isolated_runtime

README = Path(__file__).resolve().parents[2] / "README.md"
SHAPE = (3, 16, 16)


def readme_example() -> str:
    """The first Python block of the README's section on the public API."""
    text = README.read_text()
    section = text.split("## From Python: your own model", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's public-API section has no Python example"
    return match.group(1)


def noise_psnr(truth: Tensor) -> float:
    """What guessing uniform noise scores: the floor a reconstruction must beat."""
    noise = torch.rand(truth.shape, generator=torch.Generator().manual_seed(0))
    return float(psnr(noise, truth).mean())


def mlp(seed: int = 0, width: int = 32, classes: int = 10) -> nn.Sequential:
    """A model defined here and registered nowhere."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(int(np.prod(SHAPE)), width), nn.Sigmoid(), nn.Linear(width, classes)
    )


def batchnorm_net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Sigmoid(),
        nn.Flatten(), nn.Linear(4 * 16 * 16, 5),
    )  # fmt: skip


def batch(n: int = 2, seed: int = 1, classes: int = 10) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *SHAPE), generator=g), torch.randint(0, classes, (n,), generator=g)


def gradient_of(model: nn.Module, images: Tensor, labels: Tensor) -> list[Tensor]:
    """What a FedSGD client uploads, computed the way a user would, without gradleak."""
    loss = nn.functional.cross_entropy(model(images), labels)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


def loss_at(images: Tensor, **kwargs: Any) -> float:
    """The attack's matching loss with the true images as its start: ~0 exactly when the
    target replays the update the way it was produced."""
    options = {"tv_weight": 0.0, **kwargs.pop("options", {})}
    rec = gradleak.attack(
        "inverting_gradients", init=images, iterations=1, options=options, **kwargs
    )
    return rec.trace.trace[0][1]


def test_the_readme_example_runs_and_reconstructs(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    rec, images = namespace["rec"], namespace["images"]
    assert rec.images.shape == images.shape
    assert float(rec.images.min()) >= 0 and float(rec.images.max()) <= 1
    assert namespace["metrics"]["psnr_mean"] > noise_psnr(images) + 10
    assert "PSNR" in capsys.readouterr().out


DEMO_LIKE: dict[str, Any] = {
    "seed": 3,
    "data": {"name": "samples", "image_size": 16, "max_images": 2},
    "model": {"name": "mlp", "width": 8},
    "federation": {"num_clients": 1, "batch_size": 2, "protocol": "fedsgd"},
    # A server holding only the gradient: it replays FedSGD at rate 1, as the public API does.
    "threat": {"attacker": "server", "victim": 0, "knows_local_hparams": False},
    "attack": {"name": "inverting_gradients", "iterations": 30, "lr": 0.1, "tv_weight": 0.01},
}


@pytest.mark.parametrize("labels", ["recovered", "given"])
def test_the_api_reproduces_gradleak_run_exactly(tmp_path: Path, labels: str) -> None:
    raw = copy.deepcopy(DEMO_LIKE)
    raw["attack"]["labels"] = labels
    raw["threat"]["knows_labels"] = labels == "given"
    config = validate_config(raw)
    metrics = run_experiment(config, tmp_path / "run")
    # The run's own federation state: the victim's upload and the weights it was taken at.
    with isolated_runtime(config.threads, config.seed):
        scenario = THREATS.get("server")(preflight(config), torch.device("cpu"))
    target = scenario.target
    model = copy.deepcopy(target.model)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(target.parameters[name])
    # ``threads=`` runs the call at the run's thread count: with more than one thread the
    # reductions split differently and the last bits differ on some CPUs (seen on a 2-core
    # Intel Xeon), so a caller at any other count reproduces the run through it.
    rec = gradleak.attack(
        "inverting_gradients",
        model,
        gradient=dict(target.observed_update),
        labels=target.labels,
        num_images=target.num_images,
        image_shape=target.image_shape,
        iterations=config.attack.iterations,
        seed=config.seed,
        threads=config.threads,
        options={"lr": 0.1, "tv_weight": 0.01},
    )
    with isolated_runtime(config.threads, config.seed):  # the run scores at its threads too
        scores = gradleak.score(rec, scenario.truth.images, scenario.truth.labels)
    assert rec.trace.trace == metrics["trace"]
    assert rec.trace.best_loss == metrics["best_loss"]
    assert scores == {k: metrics[k] for k in scores}
    assert scores["psnr_mean"] > noise_psnr(scenario.truth.images) + 3


@pytest.mark.parametrize("train", [True, False])
def test_an_unregistered_batchnorm_model_is_attacked_in_the_users_mode(train: bool) -> None:
    model = batchnorm_net().train(train)
    images, labels = batch(classes=5)
    grads = gradient_of(model, images, labels)
    before = copy.deepcopy(model.state_dict())
    common: dict[str, Any] = {
        "gradient": grads,
        "labels": labels,
        "num_images": 2,
        "image_shape": SHAPE,
    }
    matched = loss_at(images, model=model, **common)
    other_mode = loss_at(images, model=copy.deepcopy(model).train(not train), **common)
    assert matched < 1e-5, matched
    assert other_mode > 100 * max(matched, 1e-8), (matched, other_mode)
    # the user's model is as it was: weights, running statistics, mode
    assert model.training is train
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    rec = gradleak.attack("inverting_gradients", model, iterations=3, **common)
    assert rec.images.shape == images.shape and rec.labels is not None
    assert float(rec.images.min()) >= 0 and float(rec.images.max()) <= 1


def test_a_model_expecting_normalised_input_is_attacked_in_pixel_space() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    model = mlp()
    images, labels = batch()
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    grads = gradient_of(model, (images - m) / s, labels)
    common: dict[str, Any] = {"model": model, "gradient": grads, "labels": labels, "num_images": 2,
              "image_shape": SHAPE}  # fmt: skip
    assert loss_at(images, normalize=(mean, std), **common) < 1e-5
    assert loss_at(images, **common) > 1e-3
    assert not model._forward_pre_hooks  # the hook is on the attacker's copy only


def test_a_fedavg_update_from_weights_before_and_after_reconstructs() -> None:
    model = mlp(width=64)
    images, labels = batch(3)
    before = copy.deepcopy(model.state_dict())
    # the client's local training, written as a user's plain torch loop: 3 steps of minibatch 2
    client = copy.deepcopy(model)
    optimizer = torch.optim.SGD(client.parameters(), lr=0.05)
    chunks = [slice(0, 2), slice(2, 3), slice(0, 2)]
    for chunk in chunks:
        optimizer.zero_grad()
        nn.functional.cross_entropy(client(images[chunk]), labels[chunk]).backward()
        optimizer.step()
    update: dict[str, Any] = {"before": before, "after": client.state_dict(), "local_steps": 3,
              "local_lr": 0.05, "local_batch_size": 2, "labels": labels, "num_images": 3,
              "image_shape": SHAPE}  # fmt: skip
    assert loss_at(images, model=model, **update) < 1e-4
    # the L2 distance also sees the update's scale, (before - after) / local_lr
    assert loss_at(images, model=model, options={"objective": "l2"}, **update) < 1e-8
    assert loss_at(images, model=model, **{**update, "local_batch_size": None}) > 1e-3
    rec = gradleak.attack("inverting_gradients", model, iterations=150, **update)
    assert gradleak.score(rec, images, labels)["psnr_mean"] > noise_psnr(images) + 6


def test_a_curious_client_attacks_its_peers_from_two_global_models() -> None:
    model = mlp(width=16)
    images, labels = batch(3)  # the attacker's (first) and its two peers' images, one each
    w_t = [p.detach().clone() for p in model.parameters()]
    lr = 0.1
    updates = [gradient_of(model, images[k : k + 1], labels[k : k + 1]) for k in range(3)]
    w_t1 = [w - lr * sum(u[i] for u in updates) / 3 for i, w in enumerate(w_t)]
    common: dict[str, Any] = {"model": model, "global_models": [w_t, w_t1], "own_update": updates[0],
              "num_clients": 3, "local_lr": lr, "labels": labels[1:], "num_images": 2,
              "image_shape": SHAPE}  # fmt: skip
    rec = gradleak.attack(
        "curious_client",
        init=images[1:],
        iterations=1,
        options={"refine_scales": [], "parametrization": "pixels"},
        **common,
    )
    assert rec.trace.trace[0][1] < 1e-6
    rec = gradleak.attack(
        "curious_client",
        iterations=1,
        options={"refine_scales": [], "parametrization": "pixels"},
        **common,
    )
    assert rec.trace.trace[0][1] > 1e-2  # from a random start the loss is far from zero
    # the default low-resolution latent starts from the images' area-downsampled version
    lowres = {"refine_scales": [], "scale": 2}
    started = gradleak.attack("curious_client", init=images[1:], iterations=1, options=lowres,
                              **common)  # fmt: skip
    drawn = gradleak.attack("curious_client", iterations=1, options=lowres, **common)
    assert started.trace.trace[0][1] < 0.5 * drawn.trace.trace[0][1]
    assert rec.images.shape == (2, *SHAPE)


def numpy_key() -> Any:
    return np.random.get_state(legacy=False)["state"]["key"].copy()


def test_the_call_leaves_the_process_and_the_model_as_it_found_them() -> None:
    model = mlp()
    images, labels = batch()
    grads = gradient_of(model, images, labels)
    weights = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(9)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)  # not what a run's config would set
    expected = (torch.get_rng_state(), numpy_key(), random.getstate())
    seen: list[tuple[int, float]] = []
    threads_seen: list[int] = []

    def progress(iteration: int, loss: float) -> None:
        seen.append((iteration, loss))
        threads_seen.append(torch.get_num_threads())

    try:
        gradleak.attack(
            "inverting_gradients", model, gradient=grads, num_images=2, image_shape=SHAPE,
            iterations=5, seed=77, threads=1, options={"log_every": 1}, callback=progress,
        )  # fmt: skip
        assert threads_seen == [1] * 5  # the call ran at the threads it was given
        assert torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.get_rng_state(), expected[0])
    assert np.array_equal(numpy_key(), expected[1])
    assert random.getstate() == expected[2]
    assert [i for i, _ in seen] == [1, 2, 3, 4, 5]
    assert all(torch.equal(p, w) for p, w in zip(model.parameters(), weights, strict=True))
    assert all(p.grad is None for p in model.parameters())


def bad_inputs() -> dict[str, tuple[dict[str, Any], str]]:
    model = mlp()
    images, labels = batch()
    grads = gradient_of(model, images, labels)
    good: dict[str, Any] = {"name": "inverting_gradients", "model": model, "gradient": grads, "num_images": 2,
            "image_shape": SHAPE, "iterations": 1}  # fmt: skip
    names = [n for n, _ in model.named_parameters()]
    return {
        "too few tensors": ({**good, "gradient": grads[:-1]}, "3 tensors given"),
        "a wrong shape": ({**good, "gradient": [*grads[:-1], grads[-1][:5]]}, "has shape (5,)"),
        "an unknown name": (
            {**good, "gradient": {**dict(zip(names, grads, strict=True)), "x.weight": grads[0]}},
            "unknown: ['x.weight']",
        ),
        "an unknown attack": ({**good, "name": "invertin_gradients"}, "invertin_gradients"),
        "an unknown option": ({**good, "options": {"objektive": "l2"}}, "objektive"),
        "a bad option value": ({**good, "options": {"restarts": 0}}, "restarts"),
        "no image shape": ({**good, "image_shape": None}, "image_shape"),
        "an image shape the model cannot take": (
            {**good, "image_shape": (3, 8, 8)},
            "cannot take a batch of (2, 3, 8, 8)",
        ),
        "a model without a linear output": (
            {**good, "model": nn.Sequential(nn.Flatten()), "gradient": []},
            "no nn.Linear layer",
        ),
        "labels of another batch": ({**good, "labels": labels[:1]}, "1 labels"),
        "a label the model does not have": ({**good, "labels": labels + 10}, "[0, 10)"),
        "an init of another shape": ({**good, "init": images[:1]}, "init"),
        "no threads": ({**good, "threads": 0}, "threads"),
        "threads as text": ({**good, "threads": "2"}, "threads"),
        "an init a generator cannot take": (
            {**good, "name": "fedleak", "init": images},
            "cannot start from given images",
        ),
        "no update at all": ({**good, "gradient": None}, "gradient=..."),
        "fedavg without its rate": (
            {**good, "gradient": None, "before": grads, "after": grads},
            "local_lr",
        ),
    }


@pytest.mark.parametrize("case", sorted(bad_inputs()))
def test_bad_input_is_one_config_error_line(case: str) -> None:
    kwargs, needle = bad_inputs()[case]
    name = kwargs.pop("name")
    with pytest.raises(ConfigError) as info:
        gradleak.attack(name, **kwargs)
    message = str(info.value)
    assert "\n" not in message and needle in message, message


def test_score_takes_a_plain_tensor_and_refuses_a_mismatch() -> None:
    images, _ = batch()
    noisy = images + 0.05 * torch.randn(images.shape, generator=torch.Generator().manual_seed(2))
    metrics = gradleak.score(noisy.clamp(0, 1).flip(0), images)
    assert [p["matched_to"] for p in metrics["per_image"]] == [1, 0]  # paired by PSNR
    assert metrics["psnr_mean"] == pytest.approx(float(psnr(noisy.clamp(0, 1), images).mean()))
    assert metrics["label_accuracy"] is None
    with pytest.raises(ConfigError):
        gradleak.score(images[:, :1], images)
