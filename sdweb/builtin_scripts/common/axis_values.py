"""X/Y/Z plot axis values as A1111 reads them: comma-separated (CSV quoting allowed, one value per line with
"Use text inputs" too), integer and float ranges, and permutations for "Prompt order". Pure functions.

Ranges (a1111.md §16.6), each one item of the list:
    1-5          1, 2, 3, 4, 5                   (step 1; a float range steps by 1 too)
    1-10 (+3)    1, 4, 7, 10                     (explicit step; A1111 stops before end+1 for integers)
    10-1 (-3)    10, 7, 4                        (a negative step counts down; 1 is not reached)
    1-10 [4]     1, 4, 7, 10                     (count: evenly spaced, integers truncated)
    0.5-1 [5]    0.5, 0.625, 0.75, 0.875, 1.0
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*\d+(?:\.\d*)?"
_INT_STEP = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(([+-]\d+)\s*\))?\s*")
_INT_COUNT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})\s*\[(\d+)\s*\]\s*")
_FLOAT_STEP = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*")
_FLOAT_COUNT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[(\d+(?:\.\d*)?)\s*\]\s*")
MAX_VALUES = 10_000  # one axis; more is a typo ("1-1000000"), not a plot


class AxisValueError(ValueError):
    """A value list that cannot be read; the message names the bad item."""


def split_values(text: str) -> list[str]:
    """`a, "b, c", d` -> ["a", "b, c", "d"]: CSV rows (lines) joined, items stripped, empty items dropped."""
    rows = csv.reader(io.StringIO(text or ""), skipinitialspace=True)
    return [item.strip() for item in itertools.chain.from_iterable(rows) if item.strip()]


def join_values(values: Sequence[Any]) -> str:
    """The reverse of split_values (quotes where needed), for the dropdown <-> text switch."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([str(value) for value in values])
    return buffer.getvalue()


def _number(text: str) -> str:
    return text.replace(" ", "")


def _checked(values: list[Any], item: str) -> list[Any]:
    if not values:
        raise AxisValueError(f"{item!r} gives no values (for a range that counts down, give a negative step: "
                             f"'10-1 (-1)')")
    if len(values) > MAX_VALUES:
        raise AxisValueError(f"{item!r} gives {len(values)} values; at most {MAX_VALUES} per axis")
    return values


def expand_int(item: str) -> list[int | str]:
    """One item of an integer axis: a range's values, or the item itself (converted later)."""
    if (match := _INT_COUNT.fullmatch(item)) is not None:
        start, end, count = int(_number(match[1])), int(_number(match[2])), int(match[3])
        return _checked([int(value) for value in np.linspace(start, end, count).tolist()], item)
    if (match := _INT_STEP.fullmatch(item)) is not None:
        start, end = int(_number(match[1])), int(_number(match[2]))
        step = int(match[3]) if match[3] is not None else 1
        if step == 0:
            raise AxisValueError(f"{item!r}: the step must not be 0")
        return _checked(list(range(start, end + 1, step)), item)
    return [item]


def expand_float(item: str) -> list[float | str]:
    """One item of a float axis: a range's values, or the item itself (converted later)."""
    if (match := _FLOAT_COUNT.fullmatch(item)) is not None:
        start, end, count = float(_number(match[1])), float(_number(match[2])), int(float(match[3]))
        return _checked(np.linspace(start, end, count).tolist(), item)
    if (match := _FLOAT_STEP.fullmatch(item)) is not None:
        start, end = float(_number(match[1])), float(_number(match[2]))
        step = float(match[3]) if match[3] is not None else 1.0
        if step == 0:
            raise AxisValueError(f"{item!r}: the step must not be 0")
        if (end - start) / step > MAX_VALUES:
            raise AxisValueError(f"{item!r} gives more than {MAX_VALUES} values")
        return _checked(np.arange(start, end + step, step).tolist(), item)
    return [item]


def _convert(values: list[Any], kind: Callable[[Any], Any], name: str) -> list[Any]:
    converted = []
    for value in values:
        try:
            converted.append(kind(value))
        except (TypeError, ValueError):
            raise AxisValueError(f"{value!r} is not {name}") from None
    return converted


def parse_axis_values(items: Sequence[str], kind: str) -> list[Any]:
    """The values of one axis from its items (split_values' output or a dropdown's list).

    kind: "int" (ranges allowed), "float" (ranges allowed), "str", or "permutations" (every order of the
    items, each a tuple). Raises AxisValueError naming the bad item."""
    if kind == "int":
        expanded = [value for item in items for value in expand_int(item)]
        return _checked(_convert(expanded, int, "a whole number"), ", ".join(items))
    if kind == "float":
        expanded = [value for item in items for value in expand_float(item)]
        return _checked(_convert(expanded, float, "a number"), ", ".join(items))
    if kind == "permutations":
        if len(items) > 7:
            raise AxisValueError(f"Prompt order: {len(items)} items give too many orders; use at most 7")
        return list(itertools.permutations(items))
    return [str(item) for item in items]
