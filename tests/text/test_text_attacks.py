"""The text inversions (tag, lamp, fedleak_text) on real Lee sentences and an untrained
bert_tiny: far above random tokens at batch 1, and they run on FedAvg and two-group targets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS, Attack, Reconstruction
from gradleak.attacks.target import AttackTarget, target_from_batch
from gradleak.attacks.text_prior import PriorSettings, language_prior, sentence_nll
from gradleak.config import AttackConfig
from gradleak.data.text_corpus import TEXT_DATASETS, TextDataset
from gradleak.data.text_tokenizer import TextTokenizer, corpus_tokenizer
from gradleak.errors import CapabilityError, ConfigError, UnknownNameError
from gradleak.fl.functional import LocalSchedule
from gradleak.fl.knowledge import Capabilities
from gradleak.metrics.text import score_text_batch
from gradleak.models import MODELS, ModelSpec
from gradleak.models.text import GptTiny

pytest.importorskip("tokenizers")
pytest.importorskip("rouge_score")

LENGTH = 12
TEXT_ATTACKS = ["tag", "lamp", "fedleak_text"]


@pytest.fixture(scope="module")
def lee(
    text_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TextDataset, TextTokenizer]:
    data = TEXT_DATASETS.get("lee")(text_cache)
    score_text_batch(["warm up"], ["the scorer"])  # its one-off import is not a test's time
    folder = tmp_path_factory.mktemp("tok")
    return data, corpus_tokenizer(data.sentences, "lee", folder, vocab_size=1000, seq_len=LENGTH)


def _model(tok: TextTokenizer, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = ModelSpec(
        num_classes=2, channels=0, image_size=0, vocab_size=tok.vocab_size, seq_len=LENGTH
    )
    return MODELS.get("bert_tiny")(spec)


def _target(
    lee: tuple[TextDataset, TextTokenizer], picks: list[int], schedule: LocalSchedule | None = None
) -> tuple[AttackTarget, torch.Tensor]:
    data, tok = lee
    sample = data.subset(picks)
    ids = tok.encode(sample.sentences)
    return target_from_batch(_model(tok), ids, sample.labels, schedule, tokenizer=tok), ids


def _attack(name: str, iterations: int, **options: object) -> Attack:
    if name == "lamp":
        options.setdefault("lm_weight", 0.0)
    return ATTACKS.get(name)(
        AttackConfig(name=name, iterations=iterations, log_every=1, options=options)
    )


def _score(tok: TextTokenizer, ids: torch.Tensor, recon: torch.Tensor) -> dict[str, float]:
    return score_text_batch(tok.decode(ids), tok.decode(recon), ids, recon)


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_beats_random_tokens_at_batch_one(
    lee: tuple[TextDataset, TextTokenizer], name: str
) -> None:
    data, tok = lee
    target, ids = _target(lee, [7])
    calls: list[tuple[int, float]] = []
    torch.manual_seed(0)
    attack = _attack(name, 12)
    recon = attack.reconstruct(target, lambda i, v: calls.append((i, v)))
    assert recon.images.shape == ids.shape and recon.images.dtype == torch.long
    assert attack.modality == "text" and attack.total_iterations() == 12
    assert [i for i, _ in calls] == list(range(1, 13))
    assert recon.labels is not None and recon.labels.tolist() == data.labels[[7]].tolist()
    got = _score(tok, ids, recon.images)
    guess = torch.randint(tok.vocab_size, ids.shape, generator=torch.Generator().manual_seed(1))
    chance = _score(tok, ids, guess)
    assert got["rouge1_mean"] > chance["rouge1_mean"] + 0.5, (got, chance)
    assert got["token_accuracy"] > chance["token_accuracy"] + 0.5


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_uniform_start_still_beats_random(
    lee: tuple[TextDataset, TextTokenizer], name: str
) -> None:
    """Without the gradient-row start, only the token set and the optimisation help: still
    clearly above random tokens (the projection never leaves the recovered set)."""
    _, tok = lee
    target, ids = _target(lee, [11])
    torch.manual_seed(0)
    recon = _attack(name, 10, init="tokens").reconstruct(target)
    guess = torch.randint(tok.vocab_size, ids.shape, generator=torch.Generator().manual_seed(1))
    got, chance = _score(tok, ids, recon.images), _score(tok, ids, guess)
    assert got["rouge1_mean"] > chance["rouge1_mean"] + 0.1, (got, chance)
    assert set(recon.images.flatten().tolist()) <= set(ids.flatten().tolist())


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_fedavg_two_local_steps(lee: tuple[TextDataset, TextTokenizer], name: str) -> None:
    target, ids = _target(lee, [3, 4], LocalSchedule(steps=2, lr=0.1, batch_size=1))
    torch.manual_seed(0)
    recon = _attack(name, 4).reconstruct(target)
    assert recon.images.shape == ids.shape and recon.iterations == 4
    assert not recon.diverged and torch.isfinite(torch.tensor(recon.best_loss))


def _two_groups(target: AttackTarget, ids: torch.Tensor, labels: torch.Tensor) -> AttackTarget:
    update_model = replace(target.update_model, num_groups=2)
    observed = update_model(target.parameters, target.buffers, ids, labels, create_graph=False)
    return replace(
        target,
        update_model=update_model,
        observed_update={k: v.detach() for k, v in observed.items()},
    )


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_two_group_target(lee: tuple[TextDataset, TextTokenizer], name: str) -> None:
    data, _ = lee
    target, ids = _target(lee, [20, 21, 22, 23])
    target = _two_groups(target, ids, data.labels[[20, 21, 22, 23]])
    torch.manual_seed(0)
    recon = _attack(name, 3).reconstruct(target)
    assert recon.images.shape == (4, LENGTH) and not recon.diverged
    assert set(recon.images.flatten().tolist()) <= set(ids.flatten().tolist())


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_refuses_an_image_target(name: str) -> None:
    torch.manual_seed(0)
    net = MODELS.get("lenet_dlg")(ModelSpec(num_classes=10, channels=3, image_size=16))
    images, labels = torch.rand(1, 3, 16, 16), torch.tensor([3])
    target = target_from_batch(net, images, labels, capabilities=Capabilities())
    with pytest.raises(CapabilityError, match="reconstructs text, but the target is image") as info:
        _attack(name, 2).reconstruct(target)
    assert "\n" not in str(info.value)
    with pytest.raises(CapabilityError, match="has no token_embedding"):
        _attack(name, 2).check_model(net)


def test_lamp_prior_is_not_the_victims_corpus(lee: tuple[TextDataset, TextTokenizer]) -> None:
    attack = ATTACKS.get("lamp")(AttackConfig(name="lamp", options={"prior_corpus": "lee"}))
    with pytest.raises(ConfigError, match="prior_corpus=lee is the victims' data set"):
        attack.check_dataset("lee")  # type: ignore[attr-defined]
    attack.check_dataset("movie_reviews")  # type: ignore[attr-defined]
    target, _ = _target(lee, [5])
    with pytest.raises(ConfigError, match="victims' data set"):
        attack.reconstruct(replace(target, description={"dataset": "lee"}))
    off = ATTACKS.get("lamp")(
        AttackConfig(name="lamp", options={"prior_corpus": "lee", "lm_weight": 0})
    )
    off.check_dataset("lee")  # type: ignore[attr-defined]
    with pytest.raises(UnknownNameError, match="prior_corpus for lamp"):
        ATTACKS.get("lamp")(AttackConfig(name="lamp", options={"prior_corpus": "nope"}))


@pytest.fixture
def prior_cache(text_cache: Path, tmp_path: Path) -> Path:
    """A fresh cache holding only the movie-review file the priors below read (the shared
    corpora cache stays untouched)."""
    cache = tmp_path / "cache"
    (cache / "gensim-4.4.0").mkdir(parents=True)
    source = text_cache / "gensim-4.4.0" / "pang_lee_polarity.cor"
    (cache / "gensim-4.4.0" / source.name).write_bytes(source.read_bytes())
    return cache


def test_lamp_prior_learns_public_text_and_is_cached(
    lee: tuple[TextDataset, TextTokenizer], prior_cache: Path
) -> None:
    _, tok = lee
    settings = PriorSettings("movie_reviews", steps=60, seed=0)
    prior = language_prior(tok, LENGTH, prior_cache, settings)
    assert len(list((prior_cache / "lm_priors").glob("movie_reviews-gpt_tiny-*.pt"))) == 1
    again = language_prior(tok, LENGTH, prior_cache, settings)
    for a, b in zip(prior.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    sentences = TEXT_DATASETS.get("movie_reviews")(prior_cache).sentences[:50]
    reviews = replace(tok, seq_len=LENGTH).encode(sentences)
    torch.manual_seed(0)
    untrained = GptTiny(tok.vocab_size, LENGTH).eval()
    trained_nll = float(sentence_nll(prior, reviews).mean())
    assert trained_nll < float(sentence_nll(untrained, reviews).mean()) - 0.5


def test_lamp_with_its_prior_runs(
    lee: tuple[TextDataset, TextTokenizer], prior_cache: Path
) -> None:
    target, ids = _target(lee, [9])
    torch.manual_seed(0)
    options = {
        "lm_weight": 0.2,
        "prior_corpus": "movie_reviews",
        "prior_steps": 20,
        "prior_cache": str(prior_cache),
        "candidates": 4,
        "swap_every": 5,
    }
    recon: Reconstruction = _attack("lamp", 10, **options).reconstruct(target)
    assert recon.images.shape == ids.shape and recon.iterations == 10
    assert list((prior_cache / "lm_priors").glob("movie_reviews-gpt_tiny-*.pt"))


def test_gradient_rows_start_is_exact_at_batch_one(lee: tuple[TextDataset, TextTokenizer]) -> None:
    """The position-embedding rows explain the token rows away: one sentence's tokens come out
    in order, repeated tokens and padding included, before any optimisation."""
    from gradleak.attacks.text_problem import TextProblem
    from gradleak.attacks.text_starts import gradient_rows

    data, tok = lee
    ids_all = tok.encode(data.sentences)
    content = ids_all[:, 1:]
    repeated = [
        i
        for i in range(len(data))
        if len(set(content[i].tolist())) < LENGTH - 1 and 0 not in content[i]
    ]
    padded = [i for i in range(len(data)) if 0 in content[i]]
    picks = repeated[:2] + padded[:2]
    assert len(picks) == 4
    for i in picks:
        target, ids = _target(lee, [i])
        problem = TextProblem.of("test", target, "recovered")
        start = problem.fixed_ids(gradient_rows(problem, target, torch.Generator().manual_seed(0)))
        assert torch.equal(start, ids), (tok.tokens(ids), tok.tokens(start))


def test_soft_lookup_replays_the_embedding_update(lee: tuple[TextDataset, TextTokenizer]) -> None:
    """At the true tokens' rows the soft lookup's replay matches every tensor, the token
    embedding's included; without it that tensor is left out."""
    from gradleak.attacks.objectives import OBJECTIVES
    from gradleak.attacks.text_inversion import TextMatching
    from gradleak.attacks.text_problem import TextProblem

    target, ids = _target(lee, [30, 31])
    problem = TextProblem.of("test", target, "recovered")
    l2 = OBJECTIVES.get("l2")
    truth = problem.embed(ids)
    for lookup in (0.05, None):
        matching = TextMatching(target, problem, l2, lookup)
        names = set(matching.rounds[0][3])
        assert any(n.endswith("token_embedding.weight") for n in names) == (lookup is not None)
        at_truth = float(matching(truth, problem.labels, create_graph=False))
        shuffled = ids.flip(0)
        off = float(matching(problem.embed(shuffled), problem.labels, create_graph=False))
        assert at_truth < 1e-6 * max(off, 1e-12) + 1e-9, (at_truth, off)


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_simplex_parametrization_runs(lee: tuple[TextDataset, TextTokenizer], name: str) -> None:
    """Softmax mixtures of the rows instead of free embeddings (LAMP reorders their logits)."""
    target, ids = _target(lee, [12, 13])
    torch.manual_seed(0)
    attack = (
        _attack(name, 6, parametrization="simplex", swap_every=3)
        if name == "lamp"
        else (_attack(name, 6, parametrization="simplex"))
    )
    recon = attack.reconstruct(target)
    assert recon.images.shape == ids.shape and recon.iterations == 6 and not recon.diverged
    assert set(recon.images.flatten().tolist()) <= set(ids.flatten().tolist())


@pytest.mark.parametrize("name", TEXT_ATTACKS)
def test_text_attacks_stop_on_a_plateau(lee: tuple[TextDataset, TextTokenizer], name: str) -> None:
    """``attack.stop_on_plateau`` reaches the text loops too (LAMP's per chunk): a rule that
    any trial meets (less than a 90 % fall over 5 iterations) ends the run early."""
    target, _ = _target(lee, [5])
    options: dict[str, object] = {"lm_weight": 0.0} if name == "lamp" else {}
    rule = {"patience": 5, "tolerance": 0.9}
    config = AttackConfig(name=name, iterations=200, log_every=1, options=options,
                          stop_on_plateau=rule)  # fmt: skip
    torch.manual_seed(0)
    recon = ATTACKS.get(name)(config).reconstruct(target)
    assert recon.iterations < 200
