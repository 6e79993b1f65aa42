"""Attacks refuse configurations the threat model cannot support, in one clear line."""

from __future__ import annotations

import pytest

import gradleak.attacks  # noqa: F401 - registers the attacks
from gradleak.attacks.base import ATTACKS
from gradleak.config import AttackConfig
from gradleak.errors import CapabilityError, ConfigError
from gradleak.fl.knowledge import Capabilities


@pytest.mark.parametrize("name", ["dlg", "idlg", "inverting_gradients", "fedleak"])
def test_given_labels_need_the_labels_capability(name: str) -> None:
    attack = ATTACKS.get(name)(AttackConfig(name=name, labels="given"))
    with pytest.raises(CapabilityError, match="knows_labels"):
        attack.check(Capabilities(knows_labels=False))
    attack.check(Capabilities(knows_labels=True))


@pytest.mark.parametrize("name", ["dlg", "idlg", "inverting_gradients", "fedleak"])
def test_recovered_labels_need_nothing(name: str) -> None:
    ATTACKS.get(name)(AttackConfig(name=name, labels="recovered")).check(Capabilities())


def test_batchnorm_matching_needs_buffers() -> None:
    config = AttackConfig(name="inverting_gradients", options={"bn_weight": 0.01})
    attack = ATTACKS.get("inverting_gradients")(config)
    with pytest.raises(CapabilityError, match="knows_buffers"):
        attack.check(Capabilities(knows_buffers=False))


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"attack\.options\.mask is not an option of fedleak"
    ) as err:
        ATTACKS.get("fedleak")(AttackConfig(name="fedleak", options={"mask": "x"}))
    assert "keep" in str(err.value) and "attack.options={}" in str(err.value)


def test_a_bad_option_value_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"attack\.options\.keep for fedleak"):
        ATTACKS.get("fedleak")(AttackConfig(name="fedleak", options={"keep": 2.0}))
