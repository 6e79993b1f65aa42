"""The attack interface, its registry and what an attack returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError
from torch import Tensor, nn

from gradleak.attacks.target import AttackTarget
from gradleak.config import AttackConfig
from gradleak.errors import CapabilityError, ConfigError, UnknownNameError
from gradleak.fl.knowledge import Capabilities
from gradleak.registry import Registry

T = TypeVar("T")

ProgressCallback = Callable[[int, float], None]
"""Called as (iteration, loss) while an attack optimises: feeds progress bars and traces."""

GRANT: dict[str, str] = {
    "knows_labels": "set threat.knows_labels=true, or attack.labels=recovered",
    "knows_buffers": "set threat.knows_buffers=true, or attack.options.bn_weight=0",
    "knows_local_hparams": "no threat setting grants the clients' local schedule",
    "knows_num_samples": "no threat setting grants the clients' sample counts",
    "sees_individual_updates": "set defense.secure_aggregation=false",
    "may_send_arbitrary_updates": "use threat.attacker=malicious_peer",
}
"""How a user grants each capability: the hint a missing-capability error gives for it alone."""


class AttackOptions(BaseModel):
    """Base for an attack's own options (``attack.options`` in a config); unknown keys fail."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass
class Reconstruction:
    """An attack's output: images in [0, 1] (B, C, H, W), or for a text attack token ids
    (B, T) (long), labels when it recovered them, and its trace."""

    images: Tensor
    labels: Tensor | None
    iterations: int
    best_loss: float
    trace: list[tuple[int, float]] = field(default_factory=list)
    diverged: bool = False
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Attack(ABC):
    """A reconstruction attack on an observed update.

    Subclasses set ``requires`` (names of :class:`Capabilities` fields that must be true),
    ``Options`` (their own typed options) and their own ``default_lr``/``default_tv_weight``,
    and implement :meth:`reconstruct`. A default is a value on the class, resolved once here,
    never a question of which fields the user typed.
    """

    name: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[AttackOptions]] = AttackOptions
    modality: ClassVar[str] = "image"
    """What the attack reconstructs: ``"image"`` (pixels) or ``"text"`` (token ids); a run
    refuses an attack whose modality is not its data's."""
    default_lr: ClassVar[float] = 0.1
    """This attack's step size when ``attack.lr`` is unset (None): each paper tuned its own."""
    default_tv_weight: ClassVar[float] = 1e-4
    """This attack's total-variation weight when ``attack.tv_weight`` is unset (None)."""

    def _options_error(self, exc: PydanticValidationError) -> str:
        """One line; an unknown option gets this attack's own names and the way to its defaults
        (options written for another attack: ``--set attack.name=X`` on a preset keeps them)."""
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] != "extra_forbidden":
            return f"attack.options.{key} for {self.name}: {err['msg']}"
        known = ", ".join(sorted(self.Options.model_fields)) or "none"
        return (
            f"attack.options.{key} is not an option of {self.name} (its options: {known}); "
            "written for another attack? --set 'attack.options={}' runs it with its defaults"
        )

    def __init__(self, config: AttackConfig) -> None:
        try:
            self.options = self.Options.model_validate(config.options)
        except PydanticValidationError as exc:
            raise ConfigError(self._options_error(exc)) from None
        self.lr: float = self.default_lr if config.lr is None else config.lr
        tv_weight = config.tv_weight
        self.tv_weight: float = self.default_tv_weight if tv_weight is None else tv_weight
        self.config = config.model_copy(
            update={
                "lr": self.lr,
                "tv_weight": self.tv_weight,
                "options": self.options.model_dump(mode="json"),
            }
        )
        """The effective section: every default this attack chose written in, so that a config
        holding it runs this same attack again (``run_id`` hashes it)."""

    def total_iterations(self) -> int:
        """How many optimisation steps :meth:`reconstruct` reports (the progress bar's length)."""
        return self.config.iterations * self.config.restarts

    def required_capabilities(self) -> frozenset[str]:
        """What this configured attack needs; given labels add ``knows_labels``."""
        needs = set(self.requires)
        if self.config.labels == "given":
            needs.add("knows_labels")
        return frozenset(needs)

    def check(self, capabilities: Capabilities) -> None:
        """Refuse, naming each missing capability and how to grant it, when the threat model
        does not give this attacker what the attack needs."""
        missing = capabilities.missing(self.required_capabilities())
        if missing:
            hints = "; ".join(f"{name}: {GRANT.get(name, 'not granted')}" for name in missing)
            raise CapabilityError(
                f"attack {self.name} needs {', '.join(missing)}, which the threat model does not "
                f"give the attacker ({hints})"
            )

    def check_model(self, model: nn.Module) -> None:
        """Refuse settings the model cannot support (called before any data is read, on a
        model built without weights); nothing by default."""
        _ = model

    def check_dataset(self, dataset: str) -> None:
        """Refuse a data set this attack must not be run on (``data.name``; called before any
        data is read): LAMP refuses a language prior trained on the victims' own corpus.
        Nothing by default."""
        _ = dataset

    def component(self, key: str, registry: Registry[T]) -> T:
        """The component that ``attack.options.<key>`` names in ``registry``: names resolve
        when the attack is built, so a typo fails before any data is read."""
        try:
            return registry.get(getattr(self.options, key))
        except UnknownNameError as exc:
            raise UnknownNameError(f"attack.options.{key} for {self.name}: {exc}") from None

    @abstractmethod
    def reconstruct(
        self, target: AttackTarget, callback: ProgressCallback | None = None
    ) -> Reconstruction:
        """Reconstruct the images behind ``target.observed_update``."""


ATTACKS: Registry[type[Attack]] = Registry("attack")
