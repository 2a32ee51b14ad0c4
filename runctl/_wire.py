"""Lenient reads from the JSON objects a provider's API answers with.

Every REST provider parses its wire models through :class:`Fields`: keys it does
not know are ignored, ``null`` and a missing key read as ``None``, and a value of
the wrong shape raises :class:`~runctl.errors.MalformedResponseError` naming the
provider and the field (``"Pod.gpu.count: expected int, got str"``), never a
``KeyError`` or ``TypeError``.

What it tolerates, because real APIs send it: integers written as integral floats
(``4.0``), booleans as ``0``/``1`` (Vast's ``has_avx: 1``), decimal amounts as JSON
numbers or numeric strings, timestamps in ISO 8601 with ``Z``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, overload

from .errors import MalformedResponseError, redact_known

__all__ = ["Fields", "hide_secrets", "malformed"]

_BODY_SHOWN = 500
#: Keys whose values carry the user's environment, scripts, commands or credentials,
#: masked in a body kept on an error (a malformed *successful* answer holds them).
_SECRET_KEY = (
    "env", "environment", "token", "secret", "password", "passwd", "key", "auth",
    "credential", "onstart", "script", "args", "command", "cmd", "user_data", "userdata",
)


def _scrub(data: object) -> object:
    if isinstance(data, Mapping):
        return {k: _mask(v) if _secret_key(k) else _scrub(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_scrub(v) for v in data]
    return data


HIDDEN = "***"


def _secret_key(key: object) -> bool:
    return isinstance(key, str) and any(s in key.lower() for s in _SECRET_KEY)


def _mask(value: object) -> object:
    # An object-valued secret (an env) keeps its keys, which help to debug; never values.
    if isinstance(value, Mapping):
        return dict.fromkeys(value, HIDDEN)
    return HIDDEN


def hide_secrets(data: object, secret: Iterable[str]) -> object:
    """``data`` with the values of its ``secret`` fields replaced by ``"***"``.

    An object-valued secret field (an env) keeps its keys, which help to debug,
    and loses its values. Nested objects and lists are hidden the same way.
    """
    keys = frozenset(secret)
    if not keys:
        return data

    def walk(value: object) -> object:
        if isinstance(value, Mapping):
            out: dict[str, object] = {}
            for k, v in value.items():
                if k in keys and v is not None:
                    out[k] = dict.fromkeys(v, HIDDEN) if isinstance(v, Mapping) else HIDDEN
                else:
                    out[k] = walk(v)
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(data)


def malformed(
    provider: str, what: str, body: object = None, *, secret: Iterable[str] = ()
) -> MalformedResponseError:
    """The error for a response runctl cannot understand, with (the start of) its body.

    Args:
        provider: the provider's name, put on the error.
        what: what was wrong, e.g. ``"ListPods: missing 'pods'"``.
        body: the offending JSON, shown truncated; ``None`` to show none.
        secret: fields of ``body`` whose values are never shown (:func:`hide_secrets`).
    """
    # Masked, then redacted, then cut: never a secret's prefix at the cut.
    shown = (
        None if body is None
        else redact_known(json.dumps(_scrub(hide_secrets(body, secret)), default=str))[
            :_BODY_SHOWN
        ]
    )
    return MalformedResponseError(what, provider=provider, body=shown)


class Fields:
    """One JSON object of a provider's response, read field by field.

    Args:
        data: the parsed JSON; anything but an object is malformed.
        what: its name in messages, e.g. ``"Pod"`` or ``"offer"``.
        provider: the provider's name, put on every error.
        secret: fields whose values are the user's secrets (env values, tokens):
            an error shows the object with them hidden. Nested objects inherit it.

    Raises:
        MalformedResponseError: ``data`` is not a JSON object.
    """

    def __init__(
        self, data: object, what: str, *, provider: str, secret: Iterable[str] = ()
    ) -> None:
        self.secret = tuple(secret)
        if not isinstance(data, Mapping):
            kind = type(data).__name__
            raise malformed(
                provider, f"{what}: expected a JSON object, got {kind}", data, secret=self.secret
            )
        self.data: Mapping[str, Any] = data
        self.what = what
        self.provider = provider

    def malformed(self, detail: str) -> MalformedResponseError:
        """An error about this object: ``"<what>: <detail>"``, with the object as body."""
        return malformed(self.provider, f"{self.what}{detail}", self.data, secret=self.secret)

    def _present(self, key: str, required: bool) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise self.malformed(f".{key}: missing")
        return value

    def _wrong(self, key: str, expected: str, value: object) -> MalformedResponseError:
        return self.malformed(f".{key}: expected {expected}, got {type(value).__name__}")

    @overload
    def text(self, key: str, *, required: Literal[True]) -> str: ...
    @overload
    def text(self, key: str, *, required: bool = False) -> str | None: ...
    def text(self, key: str, *, required: bool = False) -> str | None:
        """A string; when ``required``, present and not empty."""
        value = self._present(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "str", value)
        if required and not value:
            raise self.malformed(f".{key}: empty")
        return value

    @overload
    def integer(self, key: str, *, required: Literal[True]) -> int: ...
    @overload
    def integer(self, key: str, *, required: bool = False) -> int | None: ...
    def integer(self, key: str, *, required: bool = False) -> int | None:
        """An integer (an integral float such as ``4.0`` counts)."""
        value = self._present(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise self._wrong(key, "int", value)
        return int(value)

    def real(self, key: str) -> float | None:
        """A number, as a float (for sizes and counts, never for money)."""
        value = self._present(key, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._wrong(key, "number", value)
        return float(value)

    def number(self, key: str, *, required: bool = False) -> Decimal | None:
        """An exact decimal amount, from a JSON number or a numeric string.

        A float goes through its ``repr``, so ``0.4`` stays ``Decimal("0.4")``.
        """
        value = self._present(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self._wrong(key, "number", value)
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            raise self.malformed(f".{key}: {value!r} is not a number") from None
        if not number.is_finite():
            raise self.malformed(f".{key}: {value!r} is not finite")
        return number

    def flag(self, key: str) -> bool | None:
        """A boolean (``0`` and ``1`` count)."""
        value = self._present(key, False)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self._wrong(key, "bool", value)

    def timestamp(self, key: str) -> datetime | None:
        """An ISO 8601 time; one without a zone is taken as UTC."""
        value = self.text(key)
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.malformed(f".{key}: {value!r} is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)

    @overload
    def obj(self, key: str, *, required: Literal[True]) -> Fields: ...
    @overload
    def obj(self, key: str, *, required: bool = False) -> Fields | None: ...
    def obj(self, key: str, *, required: bool = False) -> Fields | None:
        """A nested object, read the same way (named ``<what>.<key>``)."""
        value = self._present(key, required)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._wrong(key, "object", value)
        return Fields(value, f"{self.what}.{key}", provider=self.provider, secret=self.secret)

    def items(self, key: str, *, required: bool = False) -> list[Any]:
        """A list (empty when absent); its items are not checked."""
        value = self._present(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(key, "list", value)
        return value

    def str_map(self, key: str) -> dict[str, str]:
        """An object of strings; entries whose value is not a string are dropped."""
        found = self.obj(key)
        if found is None:
            return {}
        return {str(k): v for k, v in found.data.items() if isinstance(v, str)}
