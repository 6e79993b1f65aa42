"""A :class:`~gradleak.fl.simulation.Federation` and the data it trains on, from a config.

Everything a config can get wrong about the federation (more sampled clients than clients, a
rule that cannot run on that many updates, a client without data, DP-SGD with BatchNorm) is
checked here, before any training, and raised as one clear line.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from gradleak.config import ExperimentConfig
from gradleak.data import load_dataset
from gradleak.data.base import ImageDataset
from gradleak.data.imagefolder import MIN_CLASSES
from gradleak.data.partition import partition
from gradleak.fl.adversaries import byzantine_clients
from gradleak.fl.aggregators import build_aggregator
from gradleak.fl.defenses import build_client_defenses
from gradleak.fl.dp_training import DpSgdTrainer
from gradleak.fl.executors import EXECUTORS, ExecutorSettings, plain_training
from gradleak.fl.knowledge import Capabilities
from gradleak.fl.observations import ObservationContext, RecordSpec
from gradleak.fl.protocol import protocol_info
from gradleak.fl.simulation import Federation, FederationRules, check_sampling


def client_parts(config: ExperimentConfig, data: ImageDataset) -> list[Tensor]:
    """Each client's sample indices; every client must hold at least one round's batch."""
    fed = config.federation
    return partition(
        data.labels, fed.num_clients, config.data.partition, config.seed, min_size=fed.batch_size
    )


def by_client(data: ImageDataset, parts: list[Tensor]) -> ImageDataset:
    """``data`` with every image labelled by the index of the client whose part holds it.

    At least ``MIN_CLASSES`` classes, as for the image folders, so that one client still gets a
    classifier with gradients; the class names are those of the clients.
    """
    labels = torch.empty_like(data.labels)
    for client, part in enumerate(parts):
        labels[part] = client
    names = [f"client {k}" for k in range(len(parts))]
    return replace(data, labels=labels, num_classes=max(MIN_CLASSES, len(parts)), class_names=names)


def federation_data(config: ExperimentConfig) -> ImageDataset:
    """The data a federation trains on: the configured data set, relabelled by client when
    ``data.labels`` is ``client``.

    The relabelling partitions the data set's own labels; ``build_federation`` later partitions
    the new ones, which gives the same parts because the iid split (the only one allowed with
    client labels) looks at nothing but the number of images.
    """
    data = load_dataset(config.data, config.seed)
    if config.data.labels == "client":
        return by_client(data, client_parts(config, data))
    return data


def federation_rules(
    config: ExperimentConfig, model: nn.Module, device: torch.device
) -> FederationRules:
    fed, defense = config.federation, config.defense
    protocol = protocol_info(config)
    check_sampling(protocol)
    trainer = (
        plain_training if defense.dp_sgd is None else DpSgdTrainer.for_model(defense.dp_sgd, model)
    )
    return FederationRules(
        protocol=protocol,
        aggregator=build_aggregator(defense.aggregator, protocol.clients_per_round),
        executor=EXECUTORS.get(fed.executor)(ExecutorSettings(device, fed.vmap_chunk, trainer)),
        defenses=build_client_defenses(defense.client),
        byzantine=byzantine_clients(fed.byzantine, fed.num_clients),
        secure_aggregation=defense.secure_aggregation,
        weighted=fed.weighted,
        average_buffers=fed.bn_buffers == "average",
        seed=config.seed,
        round_offset=fed.pretrain_rounds,
    )


def build_federation(
    config: ExperimentConfig,
    data: ImageDataset,
    model: nn.Module,
    capabilities: Capabilities | None = None,
    record: RecordSpec = RecordSpec(),
    rules: FederationRules | None = None,
) -> Federation:
    """The configured federation over ``data``, starting from ``model`` (already on its device),
    with its ``pretrain_rounds`` already run so that the next round is round 0. ``rules``
    replaces the configured ones (a threat that puts its own clients in, for example)."""
    device = next(model.parameters()).device
    rules = rules or federation_rules(config, model, device)
    caps = capabilities or Capabilities(sees_individual_updates=not rules.secure_aggregation)
    context = ObservationContext.of(
        model,
        rules.protocol,
        caps,
        data.input_shape,
        data.num_classes,
    )
    federation = Federation(model, data, client_parts(config, data), rules, context, record)
    federation.run_until(0)
    return federation
