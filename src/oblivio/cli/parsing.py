"""Parsing what the user writes as structured text: JSON option values (``--hparams``, ``--model-options``,
``--methods``) and ``--config`` files (YAML or JSON). Each is refused in one line, before anything grows or runs,
when it uses YAML anchors or aliases, repeats a key, nests deeper than :data:`MAX_NESTING` or is too large; never a
``RecursionError`` traceback or a silently dropped value. Re-exported by :mod:`oblivio.cli.common`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

MAX_NESTING = 32
"""Lists and mappings inside a config file or a JSON option nest at most this deep (option values are flat or one
level deep); deeper input is refused in one line instead of a ``RecursionError`` from the parser or a later step."""


def check_nesting(value: Any, *, what: str) -> Any:
    """``value`` (parsed JSON or YAML) when its lists and mappings nest at most :data:`MAX_NESTING` deep.

    Walks with an explicit stack, so that the check itself cannot recurse too deeply.

    Raises:
        ValueError: nested too deeply (one line naming ``what``).
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth > MAX_NESTING:
                raise ValueError(f"{what} is nested too deeply (more than {MAX_NESTING} levels); write it flat")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """``object_pairs_hook`` for user JSON: a key given twice is an error, not "the last one wins"."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} is given twice; give each key once")
        out[key] = value
    return out


def parse_user_json(text: str, *, what: str) -> Any:
    """JSON from the user (an option's value): a duplicate key or deep nesting is one ``ValueError`` line, never a
    ``RecursionError`` traceback (``[[[...`` 100k deep) or a silently dropped value.

    Raises:
        json.JSONDecodeError: not JSON.
        ValueError: a key twice, or nested deeper than :data:`MAX_NESTING`.
    """
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply (more than {MAX_NESTING} levels); write it flat") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return check_nesting(value, what=what)


def json_object(text: str) -> dict:
    """An argparse ``type``: a JSON object (``{"epochs": 2}``); a string, list or number is refused, and so are
    a key given twice and nesting deeper than :data:`MAX_NESTING`."""
    try:
        value = parse_user_json(text, what="the JSON value")
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text[:60]!r}") from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of names to values, e.g. '{{\"name\": 2}}', got {type(value).__name__} "
            f"{text[:60]!r}"
        )
    return value


json_object.__name__ = "JSON object"


MAX_CONFIG_BYTES = 1 << 20
"""A config file is a page of option values; anything larger than 1 MiB is refused before it is parsed."""


def _config_loader():
    """PyYAML's ``SafeLoader`` (no code runs) that refuses anchors and aliases (``&name`` / ``*name``, and so ``<<``
    merge keys) while composing, before any node is built twice: a 300-byte file of nested aliases (a "billion
    laughs") otherwise grows to gigabytes when its values are expanded."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise _AliasInConfig(event.start_mark.line + 1)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # a key twice: refused, not "the last one wins"
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise _DuplicateKeyInConfig(key_node.start_mark.line + 1, key)
                seen.add(key) if isinstance(key, (str, int, float, bool)) else None
            return super().construct_mapping(node, deep=deep)

    return NoAliasLoader


class _AliasInConfig(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _DuplicateKeyInConfig(Exception):
    def __init__(self, line: int, key: Any) -> None:
        super().__init__(line, key)
        self.line, self.key = line, key


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (or JSON) config file into a dict (PyYAML's safe loader: no code runs).

    Anchors and aliases (``&name`` / ``*name``, ``<<`` merges) are refused, and so is a file over
    :data:`MAX_CONFIG_BYTES`: a few hundred bytes of nested aliases would otherwise expand to gigabytes. A key
    given twice in one mapping and nesting deeper than :data:`MAX_NESTING` are refused too.

    Raises:
        ValueError: the file is missing, too large, not YAML, uses anchors or aliases, repeats a key, nests too
            deeply, or is not a mapping of option names to values.
    """
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"config file {path} is {size} bytes; a config file is at most {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_config_loader())  # noqa: S506 - a SafeLoader
    except _AliasInConfig as exc:
        raise ValueError(
            f"config file {path}, line {exc.line}: YAML anchors and aliases (&name, *name, <<) are not allowed in "
            "config files; write each value out"
        ) from None
    except _DuplicateKeyInConfig as exc:
        raise ValueError(
            f"config file {path}, line {exc.line}: the key {exc.key!r} is given twice in one mapping; give each key "
            "once (the first value would be dropped silently)"
        ) from None
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"config file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save "
            "it as UTF-8"
        ) from None
    except RecursionError:
        raise ValueError(
            f"config file {path} is nested too deeply (more than {MAX_NESTING} levels); write it flat"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
    check_nesting(data, what=f"config file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ValueError(f"config file {path} must be a mapping of option names to values, got {type(data).__name__}")
    return data


__all__ = ["MAX_CONFIG_BYTES", "MAX_NESTING", "check_nesting", "json_object", "load_config", "parse_user_json"]
