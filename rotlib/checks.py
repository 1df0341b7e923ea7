"""Argument checks shared by the public functions, the profiles and the command line.

Each raises a ``ValueError`` that names the setting, the valid range and the
value it got, so a typo fails at once instead of training on nonsense.
"""
from __future__ import annotations

import math

PRECISIONS = ("auto", "bf16", "fp16", "fp32")   # training and evaluation precisions (rotlib.devices.resolve_precision)


def whole_number(value, name: str, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an int, at least ``minimum``; else a ValueError naming ``name`` and the valid range."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= minimum
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a whole number, at least {minimum}; got {value!r}{hint}")
    return int(value)


def optional_whole_number(value, name: str, minimum: int = 1, hint: str = "") -> int | None:
    """Like :func:`whole_number`, with ``None`` (meaning "all") allowed."""
    return None if value is None else whole_number(value, name, minimum, hint + " (or None for all)")


def positive_number(value, name: str, hint: str = "") -> float:
    """``value`` as a finite float > 0, else a ValueError naming ``name``."""
    try:
        ok = not isinstance(value, bool) and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}{hint}")
    return float(value)


def fractions(values, name: str) -> tuple[float, ...]:
    """Increasing fractions strictly between 0 and 1 (e.g. learning-rate milestones)."""
    values = tuple(values)
    if any(not isinstance(v, (int, float)) or not 0 < v < 1 for v in values) or list(values) != sorted(values):
        raise ValueError(f"{name} must be increasing fractions of training between 0 and 1, e.g. (0.3, 0.6, 0.8); "
                         f"got {values!r}")
    return values
