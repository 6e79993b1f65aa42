"""``data.labels: client``: the faces labelled by the client that holds them (one identity per
client), the same parts in the federation as in the relabelling, and no test set."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradleak.config import ExperimentConfig, default_data_root, load_config, validate_config
from gradleak.data import load_dataset
from gradleak.data.base import ImageDataset
from gradleak.errors import ConfigError
from gradleak.experiments.threats import build_model_for
from gradleak.experiments.threats.malicious import malicious_peer
from gradleak.fl.build import build_federation, by_client, client_parts, federation_data
from gradleak.fl.evaluation import train_and_test

MALICIOUS = Path(__file__).resolve().parents[2] / "configs" / "malicious_client.yaml"
FACES = {
    "data": {"name": "celeba", "image_size": 16, "max_images": 32, "labels": "client"},
    "model": {"name": "mlp", "width": 1},
    "federation": {"num_clients": 8, "batch_size": 4},
}


@pytest.fixture(scope="module")
def faces() -> None:
    folder = default_data_root() / "celeba_subset" / "img_align_celeba"
    if not folder.is_dir():
        pytest.skip(f"offline CelebA subset not found under {folder} (set GRADLEAK_DATA)")


def test_every_client_holds_its_own_label_and_the_federation_the_same_parts(faces: None) -> None:
    config = validate_config(FACES)
    data = federation_data(config)
    relabelling_parts = client_parts(config, load_dataset(config.data, config.seed))
    assert data.num_classes == 8
    assert data.class_names == [f"client {k}" for k in range(8)]
    for client, part in enumerate(relabelling_parts):
        assert len(part) == 4
        assert data.labels[part].tolist() == [client] * 4
    federation = build_federation(config, data, build_model_for(config, data, torch.device("cpu")))
    assert len(federation.parts) == 8
    for built, relabelled in zip(federation.parts, relabelling_parts, strict=True):
        assert torch.equal(built, relabelled)
    federation.run_round()
    for client in range(8):
        assert federation.ground_truth(0, [client])[1].tolist() == [client] * 4


def test_dataset_labels_are_left_alone(faces: None) -> None:
    config = validate_config({**FACES, "data": {**FACES["data"], "labels": "dataset"}})
    data = federation_data(config)
    assert data.labels.tolist() == [0] * 32 and data.num_classes == 2


def test_one_client_still_gets_two_classes() -> None:
    data = ImageDataset("tiny", torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long), 2)
    labelled = by_client(data, [torch.arange(3)])
    assert labelled.labels.tolist() == [0, 0, 0]
    assert labelled.num_classes == 2 and labelled.class_names == ["client 0"]


def test_malicious_peer_on_faces_aims_at_the_victims_identity(faces: None) -> None:
    """The malicious scenario on faces (target built, no inversion): an 8-way head, and the
    victim's labels, which the attacker's estimate relabels its own faces with, are its index."""
    config = load_config(MALICIOUS, ["data.name=celeba", "data.labels=client"])
    scenario = malicious_peer(config, torch.device("cpu"))
    last_layer = list(scenario.target.parameters.values())[-1]
    assert last_layer.shape == (8,) and scenario.target.num_classes == 8
    assert scenario.summary["scored_clients"] == [1]
    assert scenario.truth.labels.tolist() == [1] * 4
    assert scenario.target.labels is not None and scenario.target.labels.tolist() == [1] * 4
    assert scenario.summary["test_accuracy_attacked"] is None


@pytest.mark.parametrize("scheme", ["dirichlet", "shards"])
def test_client_labels_need_the_iid_split(scheme: str) -> None:
    raw = {"data": {"labels": "client", "partition": {"scheme": scheme}}}
    with pytest.raises(ConfigError, match=rf"data\.partition\.scheme=iid .*got {scheme}$"):
        validate_config(raw)
    with pytest.raises(ConfigError, match=r"data\.labels=client needs"):
        ExperimentConfig.model_validate(raw)


def test_training_with_client_labels_has_no_test_set() -> None:
    with pytest.raises(ConfigError, match=r"data\.labels=client has no test set"):
        train_and_test(validate_config({"data": {"labels": "client"}}))
