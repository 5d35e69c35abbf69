"""Route constraints (`{id:int}`, `{name:alpha:minlength(3)}`, `{v:regex(...)}`): the inline constraints
of ASP.NET Core route templates, as the Functions host accepts them, each a check on one value's text."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import datetime

from dev.host.diagnostics import DevHostError

_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_DECIMAL_TEXT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*")
_DOUBLE_TEXT = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_GUID_CORE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_GUID_TEXT = re.compile(rf"\s*(?:[0-9a-f]{{32}}|{_GUID_CORE}|\{{{_GUID_CORE}\}}|\({_GUID_CORE}\))\s*", re.I)
_ALPHA_TEXT = re.compile(r"[a-z]*", re.I)


def _integer_between(low: int, high: int) -> Callable[[str], bool]:
    return lambda value: bool(_INT_TEXT.fullmatch(value)) and low <= int(value) <= high


def _is_datetime(value: str) -> bool:
    text = value.strip()
    with contextlib.suppress(ValueError):
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    for fmt in ("%m/%d/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%Y/%m/%d"):
        with contextlib.suppress(ValueError):
            datetime.strptime(text, fmt)
            return True
    return False


def _is_file(value: str) -> bool:
    last = value.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return 0 <= dot < len(last) - 1


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": _integer_between(*_INT32),
    "long": _integer_between(*_INT64),
    "bool": lambda value: value.strip().lower() in ("true", "false"),
    "datetime": _is_datetime,
    "decimal": lambda value: bool(_DECIMAL_TEXT.fullmatch(value)),
    "double": lambda value: bool(_DOUBLE_TEXT.fullmatch(value)),
    "float": lambda value: bool(_DOUBLE_TEXT.fullmatch(value)),
    "guid": lambda value: bool(_GUID_TEXT.fullmatch(value)),
    "alpha": lambda value: bool(_ALPHA_TEXT.fullmatch(value)),
    "required": lambda value: value != "",
    "file": _is_file,
    "nonfile": lambda value: not _is_file(value),
}


def parse_constraint(name: str, argument: str | None, template: str) -> Callable[[str], bool]:
    key = name.lower()
    if argument is None and key in _SIMPLE_CONSTRAINTS:
        return _SIMPLE_CONSTRAINTS[key]
    if argument is not None:
        if key == "regex":
            pattern = re.compile(argument, re.I)  # ASP.NET: IsMatch, IgnoreCase | CultureInvariant
            return lambda value: pattern.search(value) is not None
        args = [part.strip() for part in argument.split(",")]
        try:
            numbers = [int(part) for part in args]
        except ValueError:
            numbers = []
        if numbers:
            long_value = _integer_between(*_INT64)
            if key == "minlength" and len(numbers) == 1:
                return lambda value: len(value) >= numbers[0]
            if key == "maxlength" and len(numbers) == 1:
                return lambda value: len(value) <= numbers[0]
            if key == "length" and len(numbers) == 1:
                return lambda value: len(value) == numbers[0]
            if key == "length" and len(numbers) == 2:
                return lambda value: numbers[0] <= len(value) <= numbers[1]
            if key == "min" and len(numbers) == 1:
                return lambda value: long_value(value) and int(value) >= numbers[0]
            if key == "max" and len(numbers) == 1:
                return lambda value: long_value(value) and int(value) <= numbers[0]
            if key == "range" and len(numbers) == 2:
                return lambda value: long_value(value) and numbers[0] <= int(value) <= numbers[1]
    shown = name if argument is None else f"{name}({argument})"
    raise DevHostError(f"route {template!r}: unknown or malformed route constraint {shown!r}")
