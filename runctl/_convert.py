"""runctl's one cattrs converter: every public model to JSON and back.

Built by a factory, never the global converter, so runctl's hooks never leak
into (or are changed by) other libraries in the same process. Money is written
as a decimal string, durations as seconds, datetimes as ISO 8601.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import make_converter

from .errors import ValidationError

__all__ = ["converter", "from_json", "structure", "to_json", "unstructure"]

T = TypeVar("T")


@cache
def converter() -> cattrs.Converter:
    """The converter (built on first use, so ``import runctl`` stays light)."""
    conv = make_converter(forbid_extra_keys=False, prefer_attrib_converters=True)
    conv.register_unstructure_hook(Decimal, str)
    conv.register_structure_hook(Decimal, lambda v, _: _decimal(v))
    conv.register_unstructure_hook(timedelta, lambda v: v.total_seconds())
    conv.register_structure_hook(timedelta, lambda v, _: _timedelta(v))
    conv.register_unstructure_hook(datetime, lambda v: v.isoformat())
    conv.register_structure_hook(datetime, lambda v, _: _datetime(v))
    conv.register_unstructure_hook(Path, str)
    conv.register_structure_hook(Path, lambda v, _: Path(v))
    return conv


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise TypeError(f"{value!r} is not a decimal number")
    return Decimal(str(value))


def _timedelta(value: Any) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{value!r} is not a number of seconds")
    return timedelta(seconds=float(value))


def _datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not an ISO 8601 datetime")
    return datetime.fromisoformat(value)


def unstructure(obj: Any) -> Any:
    """A model as plain JSON-compatible data."""
    return converter().unstructure(obj)


def structure(data: Any, cls: type[T]) -> T:
    """Build ``cls`` from plain data.

    Raises:
        ValidationError: naming the first offending field (all problems in the message).
    """
    try:
        return converter().structure(data, cls)
    except ValidationError:
        raise
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError, AttributeError) as e:
        problems = (
            cattrs.transform_error(e, path=cls.__name__)
            if isinstance(e, cattrs.BaseValidationError)
            else [f"{cls.__name__}: {e}"]
        )
        inner = _first_validation_error(e)
        if inner is not None:
            raise inner from e
        field = problems[0].split("@ ", 1)[-1] if problems else cls.__name__
        raise ValidationError(field, "; ".join(problems)) from e


def _first_validation_error(e: BaseException) -> ValidationError | None:
    if isinstance(e, ValidationError):
        return e
    for sub in getattr(e, "exceptions", ()):
        found = _first_validation_error(sub)
        if found is not None:
            return found
    return None


def to_json(obj: Any, *, indent: int | None = None) -> str:
    """Serialise any runctl model (or list of them) to a JSON string."""
    return json.dumps(unstructure(obj), indent=indent, sort_keys=indent is not None)


def from_json(text: str | bytes, cls: type[T]) -> T:
    """Parse a JSON string made by :func:`to_json` back into ``cls``.

    Raises:
        ValidationError: the JSON is malformed or does not describe a valid ``cls``.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValidationError("json", f"not valid JSON: {e}") from e
    return structure(data, cls)
