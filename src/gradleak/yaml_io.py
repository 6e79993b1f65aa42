"""The one reader for YAML a user hands over: config files, sweep files and ``--set`` values.

PyYAML's ``safe_load`` builds no Python objects, but it still takes input that breaks a run
later or silently: a duplicate key wins over the first (a whole section fell back to its
defaults), an alias bomb of a few hundred bytes expands to gigabytes once the config is dumped
into the run folder, a FIFO blocks forever, ``/dev/zero`` never ends, a non-UTF-8 file raises
``UnicodeDecodeError`` and deep nesting raises ``RecursionError``. Here each of these is one
:class:`~gradleak.errors.ConfigError` line naming the file and, where there is one, the line.
Configs need none of YAML's aliases, anchors-with-references or merge keys, so they are refused
rather than bounded.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node

from gradleak.errors import ConfigError

MAX_YAML_BYTES = 1 << 20
"""Largest YAML file read (1 MiB): configs and sweep files are a few kilobytes."""

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted (configs nest four levels)."""


class _Refused(Exception):
    """Raised inside the loader; :func:`load_yaml` turns it into a ConfigError with the source."""


def _line(node_or_event: Any) -> int:
    return int(node_or_event.start_mark.line) + 1


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases or merge keys, with unique keys and bounded nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                f"line {_line(event)}: YAML alias *{event.anchor} is not allowed (write the value out)"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    f"line {_line(self.peek_event())}: nested deeper than {MAX_DEPTH} levels"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(f"line {_line(key_node)}: YAML merge keys (<<) are not allowed")
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise _Refused(f"line {_line(key_node)}: a key must be a plain value") from None
            if first is not None:
                raise _Refused(
                    f"line {_line(key_node)}: duplicate key {_short(key)} (first on line {first})"
                )
            seen[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _syntax_error_line(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load_yaml(text: str, source: str) -> Any:
    """Parse ``text`` (named ``source`` in errors, e.g. ``config file a.yaml``) strictly."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except _Refused as exc:
        raise ConfigError(f"{source}, {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {_syntax_error_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply") from None


def parse_value(raw: str, source: str) -> Any:
    """A ``--set``/``--where`` value: YAML when it parses (``4``, ``[1, 2]``), else the raw text.

    Text that is not YAML stays a string, as before; an alias or a duplicate key is refused.
    """
    if not raw.strip():
        return ""
    try:
        return yaml.load(raw, Loader=_StrictLoader)  # a SafeLoader subclass
    except _Refused as exc:
        raise ConfigError(f"{source}, {exc}") from None
    except (yaml.YAMLError, RecursionError):
        return raw


def read_yaml_file(path: Path, what: str = "config file", max_bytes: int = MAX_YAML_BYTES) -> Any:
    """Read one YAML file a user named; refuse anything but a small regular UTF-8 text file."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{what} {path} is a directory, not a YAML file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file (a FIFO, socket or device)")
    if info.st_size > max_bytes:
        raise ConfigError(f"{what} {path} is {info.st_size} bytes; the limit is {max_bytes}")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{what} {path} is over {max_bytes} bytes")
    if b"\x00" in data:
        raise ConfigError(f"{what} {path} is a binary file, not YAML text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    return load_yaml(text.removeprefix("\ufeff"), f"{what} {path}")


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values out in full, so what is dumped reads back through the strict loader."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """``data`` as YAML, keys in their order, without aliases."""
    return yaml.dump(data, Dumper=_PlainDumper, sort_keys=False)
