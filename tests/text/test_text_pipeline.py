"""Text through the same config, data loading, threats and checks as images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradleak.attacks.text_tokens import embedding_parameter_name, recover_token_set
from gradleak.config import DataConfig, ExperimentConfig, load_config
from gradleak.data import TokenDataset, load_dataset
from gradleak.data.text_tokenizer import CLS_ID, PAD_ID
from gradleak.errors import ConfigError, DataError
from gradleak.experiments.preflight import preflight
from gradleak.experiments.threats import THREATS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def text_config(text_cache: Path, name: str = "text_tag.yaml", *overrides: str) -> ExperimentConfig:
    return load_config(CONFIGS / name, [f"data.root={text_cache}", *overrides])


def test_text_data_set_loads_as_token_ids(text_cache: Path) -> None:
    cfg = DataConfig(name="movie_reviews", root=text_cache, seq_len=16, max_images=5)
    data = load_dataset(cfg, seed=0)
    assert isinstance(data, TokenDataset)
    assert data.images.shape == (5, 16) and data.images.dtype == torch.long
    assert data.input_shape == (16,) and data.modality == "text"
    assert bool((data.images[:, 0] == CLS_ID).all())
    assert data.num_classes == 2 and set(data.labels.tolist()) <= {0, 1}
    assert data.vocab_size == data.tokenizer.vocab_size > 100
    # decoding gives back the real review words (lower-cased by the WordPiece normaliser)
    assert any("the" in s.split() for s in data.tokenizer.decode(data.images))
    assert data.subset([1, 3]).tokenizer is data.tokenizer


def test_users_own_text_file(tmp_path: Path) -> None:
    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "bad.txt").write_text("a dull film.\nnothing works here at all.\n")
    (folder / "good.txt").write_text("a warm and funny film.\nthe cast is superb.\n")
    data = load_dataset(DataConfig(name="text", root=folder, seq_len=8, vocab_size=60), seed=0)
    assert data.images.shape == (4, 8) and data.num_classes == 2
    with pytest.raises(ConfigError, match=r"data\.root"):
        load_dataset(DataConfig(name="text", seq_len=8), seed=0)
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError):
        load_dataset(DataConfig(name="text", root=tmp_path / "binary.txt"), seed=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["attack.name=inverting_gradients"], "reconstructs images but data.name=movie_reviews"),
        (["model.name=convnet"], "image model"),
    ],
)
def test_modality_mismatches_are_refused(
    text_cache: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        preflight(text_config(text_cache, "text_tag.yaml", *overrides))


def test_text_model_on_images_is_refused() -> None:
    cfg = ExperimentConfig.model_validate(
        {"data": {"name": "samples", "max_images": 1}, "model": {"name": "bert_tiny"}}
    )
    with pytest.raises(ConfigError, match="text model"):
        preflight(cfg)


def test_server_threat_on_text_gives_the_attacker_the_tokeniser_and_an_exact_token_set(
    text_cache: Path,
) -> None:
    cfg = text_config(text_cache)
    scenario = THREATS.get("server")(cfg, torch.device("cpu"))
    target = scenario.target
    assert target.modality == "text" and target.image_shape == (cfg.data.seq_len,)
    assert target.labels is None  # the threat grants no labels
    truth = scenario.truth.images
    assert truth.shape == (1, cfg.data.seq_len)
    tokens = recover_token_set(target.observed_update, embedding_parameter_name(target.model))
    assert tokens == set(truth.flatten().tolist())


def test_curious_client_on_text_observes_its_peers_only(text_cache: Path) -> None:
    cfg = text_config(text_cache, "text_curious_client.yaml")
    scenario = THREATS.get("peer")(cfg, torch.device("cpu"))
    target = scenario.target
    assert target.modality == "text" and target.update_model.num_groups == 3
    assert scenario.truth.images.shape == (6, cfg.data.seq_len)
    update = target.observed_update[embedding_parameter_name(target.model)]
    rows = update.abs().amax(dim=1)
    present = set(scenario.truth.images.flatten().tolist())
    absent = torch.tensor([i for i in range(len(rows)) if i not in present])
    # the peers' tokens stand well above what is left of the attacker's own (float error,
    # about 1e-6 here, against 1.7e-4 for the rarest peer token: a threshold separates them)
    assert float(rows[sorted(present - {PAD_ID})].min()) > 20 * float(rows[absent].max())


def test_curious_clients_token_set_drops_its_own_tokens_residue(text_cache: Path) -> None:
    """The automatic threshold cuts between the float residue of the attacker's own update and
    its peers' rarest token: the recovered set is exactly the peers' tokens."""
    cfg = text_config(text_cache, "text_curious_client.yaml")
    scenario = THREATS.get("peer")(cfg, torch.device("cpu"))
    target = scenario.target
    name = embedding_parameter_name(target.model)
    assert recover_token_set(target.observed_update, name) == set(
        scenario.truth.images.flatten().tolist()
    )
    assert len(recover_token_set(target.observed_update, name, threshold=0.0)) > len(
        set(scenario.truth.images.flatten().tolist())
    )
