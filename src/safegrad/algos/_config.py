"""YAML round trip and validation for the algorithms' config dataclasses.

YAML keys are the dataclass field names; unknown keys and wrong types raise clear errors.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

__all__ = ["ConfigMixin"]


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check ``value`` against annotation ``tp``; returns ``(ok, converted value)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, float(value)
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(args) != len(value):
            return False, value
        out = []
        for v, a in zip(value, args, strict=True):
            ok, c = _type_ok(v, a)
            if not ok:
                return False, value
            out.append(c)
        return True, tuple(out)
    return True, value


class ConfigMixin:
    """``validate_types``, ``from_dict``/``to_dict`` and ``from_yaml``/``to_yaml`` for a
    dataclass."""

    def _check_types(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            ok, conv = _type_ok(value, hints[f.name])
            if not ok:
                raise TypeError(
                    f"{type(self).__name__}.{f.name}={value!r} has type {type(value).__name__}; "
                    f"expected {hints[f.name]}"
                )
            object.__setattr__(self, f.name, conv)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Build from a mapping of field names; unknown keys raise ``ValueError``."""
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} data must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} key(s) {unknown}; valid keys: {cls.field_names()}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Field name -> value (tuples as lists, YAML friendly)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_yaml(cls, path: str | Path):
        """Read a YAML preset whose keys are field names (``configs/*.yaml``)."""
        import yaml

        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        if data is None:
            data = {}
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{path}: {err}") from None

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Write (if ``path``) and return the YAML text of this config."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def replace(self, **overrides: Any):
        """A copy with ``overrides`` (unknown names raise ``ValueError``)."""
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise ValueError(
                f"unknown {type(self).__name__} field(s) {unknown}; valid: {self.field_names()}"
            )
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]
