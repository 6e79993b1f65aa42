"""The registered names DESIGN.md's user-facing contract promises."""

from gradleak.attacks.base import ATTACKS
from gradleak.data import DATASETS
from gradleak.experiments.threats import THREATS
from gradleak.fl.aggregators import AGGREGATORS
from gradleak.models import MODELS


def test_contract_names_are_registered() -> None:
    assert {"lenet_dlg", "lenet5", "convnet", "resnet18", "mlp"} <= set(MODELS.names())
    assert {
        "dlg",
        "idlg",
        "inverting_gradients",
        "fedleak",
        "curious_client",
        "malicious_client",
    } <= set(ATTACKS.names())
    assert {
        "mean",
        "krum",
        "multikrum",
        "median",
        "trimmed_mean",
        "bulyan",
        "norm_bound",
        "geomed",
    } <= set(AGGREGATORS.names())
    assert {"server", "peer", "malicious_peer"} <= set(THREATS.names())
    assert {"cifar10", "cifar100", "mnist", "celeba", "imagefolder", "samples"} <= set(
        DATASETS.names()
    )
