"""Argument checks the packages share: integers as people and NumPy write them, options as JSON reads them."""

from __future__ import annotations

import numbers
from typing import Any


def as_int(value: Any, *, minimum: int | None = None) -> int | None:
    """``value`` as a Python ``int`` if it is an integer (NumPy's included; a bool is not) of at least
    ``minimum``; else None."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and (minimum is None or value >= minimum):
        return int(value)
    return None


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """``value`` as a Python ``int`` (`as_int`), or a ValueError that names ``name``, the bound and the value."""
    number = as_int(value, minimum=minimum)
    if number is None:
        raise ValueError(f"{name} must be an int >= {minimum}; received {value!r}")
    return number


def tuples(value: Any) -> Any:
    """``value`` with every list or tuple in it a tuple, nested ones too: an option as JSON reads it back
    (``[1, 1, 1]``) compares equal to the option given (``(1, 1, 1)``)."""
    return tuple(tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
