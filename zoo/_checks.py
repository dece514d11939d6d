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


def check_sizes(name: str, value: Any, dims: tuple[str, ...], *, note: str = "") -> tuple[int, ...]:
    """``value`` (a list, tuple or 1-D NumPy array) as a tuple of positive Python ints, one per name in
    ``dims``, or a ValueError that names ``name``, the dims and the value (its types too).

    Example:
        >>> check_sizes("image_size", [32, 32], ("height", "width"))
        (32, 32)
    """
    listed = isinstance(value, (tuple, list)) or getattr(value, "ndim", None) == 1
    sizes = tuple(as_int(d, minimum=1) for d in value) if listed else ()
    if len(sizes) != len(dims) or None in sizes:
        raise ValueError(f"{name} must be ({', '.join(dims)}) of positive ints{note}; received {described(value)}")
    return sizes


def described(value: Any) -> str:
    """``value``'s repr with its type, and its items' types for a list or tuple: what an error says it received."""
    if isinstance(value, (tuple, list)):
        return f"{value!r} (a {type(value).__name__} of {', '.join(type(v).__name__ for v in value) or 'nothing'})"
    return f"{value!r} ({type(value).__name__})"


def tuples(value: Any) -> Any:
    """``value`` with every list or tuple in it a tuple, nested ones too: an option as JSON reads it back
    (``[1, 1, 1]``) compares equal to the option given (``(1, 1, 1)``)."""
    return tuple(tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
