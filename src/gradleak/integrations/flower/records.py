"""Flower records as plain named NumPy arrays and JSON-able dicts, for the capture store."""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict


def arrays_of(record: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord's arrays by name (a PyTorch app's are its ``state_dict`` names)."""
    return {name: np.array(array.numpy(), copy=True) for name, array in record.items()}


def config_of(record: ConfigRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    return {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in record.items()}


def only_arrays(content: RecordDict, key: str) -> ArrayRecord | None:
    """The message's model arrays: the record under ``key``, else its only ArrayRecord."""
    records = content.array_records
    if key in records:
        return records[key]
    return next(iter(records.values())) if len(records) == 1 else None


def only_config(content: RecordDict, key: str) -> ConfigRecord | None:
    records = content.config_records
    if key in records:
        return records[key]
    return next(iter(records.values())) if len(records) == 1 else None


def num_examples(message: Message, key: str) -> int | None:
    """The reply's ``num-examples`` (the key weighted averaging reads), when it sent one."""
    for record in message.content.metric_records.values():
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None
