"""Byte sizes written the way operators write them: ``"2GB"``, ``"50TB"``, ``"1.5 TiB"``.

Decimal units (kB, MB, GB, TB, PB) are powers of 1000, as tape and disk vendors quote them;
binary units (KiB ... PiB) are powers of 1024. A bare number is bytes.
"""

from __future__ import annotations

import re

from idds.errors import SpecError

_UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "PIB": 2**50,
}  # fmt: skip
_PATTERN = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)(?:/s)?\s*$")


def parse_size(value: str | float | int, what: str = "size") -> float:
    """The number of bytes that ``value`` names.

    Args:
        value: a number of bytes, or a string such as ``"2GB"``, ``"50TB"``, ``"3 TiB"``.
        what: the name of the field, for the error message.

    Returns:
        Bytes, as a float (> 0).

    Raises:
        SpecError: the text is not a size, its unit is unknown, or it is not positive.
    """
    if isinstance(value, bool):
        raise SpecError(f"{what}: not a size: {value!r}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        match = _PATTERN.match(str(value))
        if not match:
            raise SpecError(f"{what}: not a size: {value!r} (write e.g. 2GB or 50TB)")
        number, unit = float(match.group(1)), match.group(2).upper()
    if unit not in _UNITS:
        raise SpecError(f"{what}: unknown unit {unit!r} in {value!r} (use B, kB, MB, GB, TB, PB)")
    if number <= 0:
        raise SpecError(f"{what}: must be positive, got {value!r}")
    return number * _UNITS[unit]


def format_size(size: float, digits: int = 3) -> str:
    """``size`` bytes in the largest decimal unit that keeps the number at least 1, to
    ``digits`` significant digits."""
    for unit in ("PB", "TB", "GB", "MB", "kB"):
        scale = _UNITS[unit.upper()]
        if abs(size) >= scale:
            return f"{size / scale:.{digits}g}{unit}"
    return f"{round(size):d}B"  # whole bytes: sums of floats leave dust below one


def parse_size_list(text: str, what: str = "buffer") -> list[float | None]:
    """A comma-separated list of sizes; ``unbounded`` (or ``none``) stands for no limit.

    Raises:
        SpecError: an entry is not a size, or the list is empty.
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise SpecError(f"{what}: give at least one size, e.g. 50TB,100TB")
    return [None if t.lower() in ("unbounded", "none") else parse_size(t, what) for t in items]
