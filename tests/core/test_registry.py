import pytest

from gradleak.errors import UnknownNameError
from gradleak.registry import Registry


def test_unknown_name_lists_known_names() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("b")(2)
    registry.register("a")(1)
    assert registry.get("a") == 1
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; known: a, b"):
        registry.get("c")


def test_double_registration_is_a_bug() -> None:
    registry: Registry[int] = Registry("widget")
    registry.register("a")(1)
    with pytest.raises(ValueError):
        registry.register("a")(2)
