"""Typed experiment configuration.

One pydantic model per config section, every field with its default and its bounds here, so
that a config file, a ``--set`` override and the Python API are validated the same way. Unknown
keys are rejected (``extra="forbid"``) so that a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from gradleak.errors import ConfigError
from gradleak.yaml_io import dump_yaml, parse_value, read_yaml_file

DATA_ROOT_ENV = "GRADLEAK_DATA"

MAX_SEED = 2**63 - 1
"""Largest seed: torch takes up to 2**64 - 1, numpy's generators no negative one; this leaves
room for the offsets derived generators add."""
MAX_SEQ_LEN = 512
MAX_VOCAB = 100_000
MAX_IMAGE_SIZE = 1024
MAX_BATCH = 65_536
MAX_CLIENTS = 1_000_000
MAX_RESTARTS = 1024
"""Restarts keep a copy of each trial's best images: beyond this a typo, not an experiment."""
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"


MAX_THREADS = 1024
"""The most torch intra-op threads a run (or a public-API call) may ask for."""


def default_data_root() -> Path:
    """Where data sets live unless ``data.root`` says otherwise.

    ``$GRADLEAK_DATA`` wins; otherwise ``../shared/data`` beside the checkout when present (the
    project's offline copies), else ``~/.cache/gradleak/data``.
    """
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "gradleak" / "data"


class Section(BaseModel):
    """Base for every config section: strict keys, validated assignment, finite floats (an
    ``inf`` learning rate or a ``nan`` weight is a typo, never a setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class PartitionConfig(Section):
    """How a data set is split over clients."""

    scheme: Literal["iid", "dirichlet", "shards"] = "iid"
    alpha: PositiveFloat = 0.5
    shards_per_client: PositiveInt = 2


class DataConfig(Section):
    name: str = "samples"
    root: Path | None = None
    split: Literal["train", "test"] = "test"
    image_size: int = Field(default=32, ge=1, le=MAX_IMAGE_SIZE)
    channels: Literal[1, 3] | None = None
    max_images: PositiveInt | None = None
    download: bool = False
    shuffle: bool = False
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    labels: Literal["dataset", "client"] = "dataset"
    """``dataset``: the data set's own labels. ``client``: every image is labelled with the index
    of the client that holds it (``num_classes`` = ``federation.num_clients``, at least 2; names
    "client 0", ...), a stand-in for federated face recognition where a client is one identity
    (LEAF's CelebA splits clients by identity); for data sets whose labels carry nothing (the
    offline CelebA subset). Needs ``partition.scheme: iid``, the one split that ignores labels."""
    seq_len: int = Field(default=32, ge=2, le=MAX_SEQ_LEN)
    """Text data only: every sentence is cut or padded to this many tokens ([CLS] and [SEP]
    included)."""
    vocab_size: int = Field(default=2000, ge=8, le=MAX_VOCAB)
    """Text data only: the WordPiece vocabulary trained on the corpus (cached beside it)."""

    def resolved_root(self) -> Path:
        return self.root.expanduser() if self.root is not None else default_data_root()


class ModelConfig(Section):
    name: str = "convnet"
    activation: str | None = None  # None: the model's literature default (sigmoid for lenet_dlg)
    width: int = Field(default=16, ge=1, le=4096)
    norm: Literal["batchnorm", "groupnorm", "none"] = "batchnorm"
    checkpoint: Path | None = None
    train_mode: bool = True


class ByzantineConfig(Section):
    """Clients replaced by a model-poisoning adversary (``fl.byzantine``), with its options."""

    name: str = "sign_flip"
    clients: list[NonNegativeInt] = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class FederationConfig(Section):
    """The FL deployment. Every sampled client trains each round on ``batch_size`` images drawn
    from its own data; ``local_epochs`` (when set) replaces ``local_steps`` by
    ``local_epochs * ceil(batch_size / local_batch_size)`` steps over that batch.

    The starting model is ``model.checkpoint`` (or a seeded random initialisation), then trained
    for ``pretrain_rounds`` rounds of this same federation; round 0 is the first round after
    them. ``holdout_fraction`` of the data is kept back for testing when ``gradleak train``
    cannot use the data set's test split (see ``fl.evaluation``).
    """

    num_clients: int = Field(default=1, ge=1, le=MAX_CLIENTS)
    clients_per_round: int | None = Field(default=None, ge=1, le=MAX_CLIENTS)
    batch_size: int = Field(default=1, ge=1, le=MAX_BATCH)
    protocol: Literal["fedsgd", "fedavg"] = "fedsgd"
    local_steps: PositiveInt = 1
    local_epochs: PositiveInt | None = None
    local_batch_size: PositiveInt | None = None
    local_lr: PositiveFloat = 0.1
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    server_lr: PositiveFloat = 1.0
    rounds: PositiveInt = 1
    weighted: bool = True
    bn_buffers: Literal["average", "local"] = "average"
    executor: Literal["auto", "loop", "vmap"] = "auto"
    vmap_chunk: PositiveInt | None = None
    pretrain_rounds: NonNegativeInt = 0
    byzantine: list[ByzantineConfig] = Field(default_factory=list)
    holdout_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)


class AggregatorConfig(Section):
    name: str = "mean"
    num_byzantine: NonNegativeInt = 0
    num_selected: PositiveInt | None = None
    beta: float = Field(default=0.1, ge=0.0, lt=0.5)
    clip_norm: PositiveFloat = 10.0
    max_iterations: PositiveInt = 100


class ClientDefenseConfig(Section):
    """One client-side defence; they apply in the order listed."""

    name: str
    clip_norm: PositiveFloat | None = None
    noise_multiplier: float | None = Field(default=None, ge=0.0)
    delta: float | None = Field(default=None, gt=0.0, lt=1.0)
    fraction: float | None = Field(default=None, gt=0.0, le=1.0)
    levels: PositiveInt | None = None


class DpSgdConfig(Section):
    """DP-SGD local training (per-sample clipping and Gaussian noise at every local step)."""

    clip_norm: PositiveFloat = 1.0
    noise_multiplier: float = Field(default=1.0, ge=0.0)
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)


class DefenseConfig(Section):
    aggregator: AggregatorConfig = Field(default_factory=AggregatorConfig)
    client: list[ClientDefenseConfig] = Field(default_factory=list)
    dp_sgd: DpSgdConfig | None = None
    secure_aggregation: bool = False


class ThreatConfig(Section):
    """Who attacks, whom, when, and what they know."""

    attacker: Literal["server", "peer", "malicious_peer"] = "server"
    victim: NonNegativeInt = 0
    attacker_client: NonNegativeInt = 0
    round: NonNegativeInt = 0
    knows_labels: bool = False
    """The attacked clients' labels of the round are handed to the attacker."""
    knows_buffers: bool = False
    """``server``: the victim's BatchNorm buffers after its local training are handed over."""
    knows_local_hparams: bool = True
    """``server``: the clients' local schedule is known (FedAvg replay needs it)."""
    knows_num_samples: bool = True
    """``server``: how many images the victim trained on is known (the dummy batch's size)."""
    num_malicious: PositiveInt = 1
    """``malicious_peer``: colluding malicious clients, ``attacker_client`` and the next ids."""
    strategy: str = "auto"
    """``malicious_peer``: a ``gradleak.fl.malicious.strategies`` name; auto picks one for the rule."""
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    await_victim: bool = False
    """``malicious_peer`` under Krum: keep steering from ``round`` to ``federation.rounds`` and
    attack the first round whose exposed update carries the victim's labels (one upload can
    steer Krum only when the victim is nearly central, so a single round often fails)."""


class PlateauConfig(Section):
    """``attack.stop_on_plateau``: end a trial whose best matching loss fell by less than
    ``tolerance`` (relative) over the last ``patience`` iterations (``attacks.plateau``)."""

    patience: PositiveInt = 200
    tolerance: float = Field(default=1e-3, gt=0.0, lt=1.0)


class AttackConfig(Section):
    """Knobs shared by the attacks; ``options`` holds attack-specific ones, validated by it."""

    name: str = "inverting_gradients"
    iterations: PositiveInt = 1000
    lr: PositiveFloat | None = None
    """None: this attack's own default (``Attack.default_lr``; DLG's paper used 1.0, FedLeak's
    1e-2). A run writes the value it used, so its ``config.yaml`` reruns the same attack."""
    restarts: int = Field(default=1, ge=1, le=MAX_RESTARTS)
    labels: Literal["given", "recovered"] = "recovered"
    tv_weight: float | None = Field(default=None, ge=0.0)
    """None: this attack's own default (``Attack.default_tv_weight``), written out like ``lr``."""
    log_every: PositiveInt = 10
    compile: bool = False
    """``torch.compile`` the gradient-matching attacks' loss-and-gradient step (forward, the
    replayed update, the objective and the backward to the images, through ``torch.func``:
    ``attacks.compiled``). Applies to pixels with fixed labels and no BatchNorm prior; elsewhere,
    or when compiling fails, one warning line and the eager step. Off by default because it
    does not win on CPU at the usual budgets: per iteration it does (``bench/bench_compile.py``,
    IG at B=1, 1 thread, load ~5 on 2 cores: CPU ms/it 7.39 → 4.67 on DLG-LeNet, 12.26 → 6.95
    on ConvNet-16-small, PSNR unchanged within 0.1 dB), but compiling costs 42–50 s of wall
    time per model and process, about 10^4 iterations' saving. Worth it for long or many
    attacks on one model in one process."""
    batch_restarts: Literal["auto", "on", "off"] = "auto"
    """Run ``restarts`` > 1 side by side as one ``vmap``-ped batch (``attacks.batched_restarts``):
    the same draws, loss and selection as one after another. ``auto`` batches where it wins (on
    a GPU; on a CPU for small models and batches, by the forward's FLOPs), ``on`` wherever it
    applies (pixels, fixed labels, an elementwise optimiser, no BatchNorm in train mode),
    ``off`` never."""
    stop_on_plateau: PlateauConfig | None = None
    """Stop each trial (restart, curious-client stage; LAMP: chunk between reorderings) early
    once its best loss stalls; checked at the logging steps (``log_every``), so a patience
    shorter than that acts as ``log_every``. None (the default) runs the whole budget, as the
    papers do."""
    options: dict[str, Any] = Field(default_factory=dict)


class MetricsConfig(Section):
    lpips: bool = True
    lpips_backbone: Literal["alex", "vgg"] = "alex"
    lpips_weights: Path | None = None


class ExperimentConfig(Section):
    """A whole experiment: deployment, threat, attack and scoring."""

    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    device: str = Field(default="cpu", pattern=DEVICE_PATTERN)
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available); nothing else runs."""
    # torch intra-op threads. One by default: the models attacked here are small, and on a
    # machine with few, shared cores OpenMP threads spin-wait on each other (measured: the demo
    # ran 9x slower with 2 threads than with 1 on 2 busy cores). Raise it on an idle many-core host.
    threads: int = Field(default=1, ge=1, le=MAX_THREADS)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    federation: FederationConfig = Field(default_factory=FederationConfig)
    defense: DefenseConfig = Field(default_factory=DefenseConfig)
    threat: ThreatConfig = Field(default_factory=ThreatConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @model_validator(mode="after")
    def _check_sections(self) -> ExperimentConfig:
        """Settings that are each valid but impossible together, as one line (a ConfigError
        passes through pydantic unchanged)."""
        data = self.data
        if data.labels == "client" and data.partition.scheme != "iid":
            raise ConfigError(
                "data.labels=client needs data.partition.scheme=iid (clients are drawn before "
                f"the labels exist, so a split by label cannot apply), got {data.partition.scheme}"
            )
        return self


def _first_error_line(exc: PydanticValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    if len(where) > 80:
        where = where[:77] + "..."
    if err["type"] == "extra_forbidden":
        return f"config key {where!r} does not exist"
    if err["type"] == "string_pattern_mismatch" and err["loc"] == ("device",):
        return f"config value device: {str(err['input'])[:40]!r} is not cpu, cuda, cuda:N or auto"
    return f"config value {where}: {err['msg']}"


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key.path=value, got {text!r}")
    path = [part.strip() for part in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set {key.strip()!r}: a key path may not have empty parts")
    return path, parse_value(raw, f"--set {key.strip()}")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the raw config dict with every ``key.path=value`` applied."""
    out: dict[str, Any] = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return out


def read_config_file(path: Path, what: str = "config file") -> dict[str, Any]:
    """Read a YAML config (or sweep) file into a plain dict (not yet validated)."""
    raw = read_yaml_file(Path(path), what)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{what} {path} must hold a mapping of sections, got {type(raw).__name__}"
        )
    return raw


def validate_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw dict into an :class:`ExperimentConfig`, one clear line on failure."""
    try:
        return ExperimentConfig.model_validate(raw)
    except PydanticValidationError as exc:
        raise ConfigError(_first_error_line(exc)) from None


def load_config(path: Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a config file (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    raw = read_config_file(path) if path is not None else {}
    return validate_config(apply_overrides(raw, overrides or []))


def dump_config(config: ExperimentConfig) -> str:
    """The fully resolved config as YAML, as written to a run's ``config.yaml``."""
    return dump_yaml(config.model_dump(mode="json"))
