"""Each attack, in a short run on a small untrained model, recovers a real image far better
than noise would; FedAvg targets are inverted by unrolling the local steps."""

from __future__ import annotations

import pytest
import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.attacks.target import target_from_batch
from gradleak.config import AttackConfig
from gradleak.fl.functional import LocalSchedule
from gradleak.fl.knowledge import Capabilities
from gradleak.metrics.scoring import score_reconstruction

CASES = {
    # name: (model, model kwargs, attack config)
    "dlg": ("lenet_dlg", {}, {"iterations": 15}),
    "idlg": ("lenet_dlg", {}, {"iterations": 10}),
    "inverting_gradients": ("lenet_dlg", {}, {"iterations": 250, "tv_weight": 1e-3}),
    "fedleak": (
        "lenet_dlg",
        {},
        {"iterations": 80, "lr": 0.05, "options": {"generator_width": 16}},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_attack_beats_noise_on_a_real_image(name, cifar16, make_model, noise_psnr) -> None:
    images, labels = cifar16
    model_name, model_kwargs, attack_kwargs = CASES[name]
    net = make_model(model_name, **model_kwargs)
    truth, truth_labels = images[1:2], labels[1:2]
    target = target_from_batch(net, truth, truth_labels)
    torch.manual_seed(0)
    attack = ATTACKS.get(name)(AttackConfig(name=name, log_every=5, **attack_kwargs))
    recon = attack.reconstruct(target)
    report = score_reconstruction(recon.images, truth, recon.labels, truth_labels)
    assert not recon.diverged and recon.trace
    assert report.label_accuracy == 1.0
    assert report.psnr_mean > noise_psnr(truth) + 5.0, report.psnr_mean


def test_fedavg_target_with_three_local_steps(cifar16, make_model) -> None:
    images, labels = cifar16
    net = make_model("lenet_dlg")
    schedule = LocalSchedule(steps=3, lr=0.05, batch_size=1)
    truth, truth_labels = images[:3], labels[:3]
    target = target_from_batch(net, truth, truth_labels, schedule, Capabilities(knows_labels=True))
    replayed = target.update_model(target.parameters, target.buffers, truth, truth_labels)
    for name, value in target.observed_update.items():
        assert torch.allclose(replayed[name], value, atol=1e-5), name
    config = AttackConfig(name="inverting_gradients", iterations=40, labels="given")
    recon = ATTACKS.get("inverting_gradients")(config).reconstruct(target)
    assert recon.iterations == 40 and not recon.diverged
    assert recon.trace[-1][1] < recon.trace[0][1]
