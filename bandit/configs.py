"""Policy configs as JSON: resolve a registry name plus settings into a frozen config, and back.

Used by the run folder (``config.json``) and by ``bandit-log train --config FILE --set k=v``.
Unknown settings are an error naming the valid ones; values are coerced only where the meaning
is unambiguous (JSON lists -> tuples for tuple fields, ints -> floats for float fields).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Sequence

from bandit.policies import get_config_class


def _policy_class(name: str) -> type:
    try:
        cls = get_config_class(name)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    except ImportError as exc:
        raise ImportError(f"policy {name!r} cannot be loaded here: {exc}") from exc
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"policy {name!r}: {cls.__name__} is not a dataclass config")
    return cls


def config_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def config_to_json(config: Any) -> dict[str, Any]:
    """``{"policy": name, "settings": {field: value}}`` for a config dataclass (tuples as lists)."""
    settings = {name: _jsonable(getattr(config, name)) for name in config_fields(type(config))}
    return {"policy": type(config).name, "settings": settings}


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _coerce(policy: str, key: str, field: dataclasses.Field, value: Any, raw: bool) -> Any:
    default = _default(field)
    if raw:  # a --set value: text; parse as JSON except for plain-text fields
        if isinstance(default, str):
            try:
                parsed = json.loads(value)
                value = parsed if isinstance(parsed, str) else value
            except json.JSONDecodeError:
                pass
        else:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"policy {policy!r}: setting {key} must be true or false; got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
        raise ValueError(f"policy {policy!r}: setting {key} must be a number; got {value!r}")
    return value


def make_config(name: str, settings: Mapping[str, Any] | None = None, raw_settings: Mapping[str, str] | None = None) -> Any:
    """The frozen config of policy ``name``: defaults, then ``settings`` (JSON values), then ``raw_settings`` (text)."""
    cls = _policy_class(name)
    fields = config_fields(cls)
    values: dict[str, Any] = {}
    for source, raw in ((settings or {}, False), (raw_settings or {}, True)):
        for key, value in source.items():
            if key not in fields:
                raise ValueError(f"policy {name!r} has no setting {key!r}; valid settings: {', '.join(sorted(fields))}")
            values[key] = _coerce(name, key, fields[key], value, raw)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"policy {name!r}: {exc}") from None


def config_from_json(record: Mapping[str, Any]) -> Any:
    """Inverse of ``config_to_json``."""
    if "policy" not in record:
        raise ValueError(f"a policy config record needs 'policy' (the registry name); found keys {sorted(record)}")
    return make_config(str(record["policy"]), record.get("settings", {}))


def parse_assignments(pairs: Sequence[str], what: str = "--set") -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` (values stay text); a clear error for malformed pairs."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} takes key=value; got {pair!r}")
        out[key.strip()] = value
    return out
