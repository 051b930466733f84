"""Declarative value constraints, in the spirit of scikit-learn's ``_parameter_constraints``.

Each config schema lists, in one table, a constraint for every field: its
type, its interval (open or closed at each end, NaN never, infinity only
where the interval includes it) or its choices, and the one-line message a
user sees. ``check_fields`` walks the table; ``tests/test_pipeline_config.py``
fails when a schema field has no entry.
"""

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any, cast

from pipeline.credentials import redact
from pipeline.errors import InputError


class ConfigError(InputError, ValueError):
    """A config value is invalid; the message is one line naming the key."""


@dataclass(frozen=True)
class Interval:
    """A number of ``type`` (int or float) between ``low`` and ``high`` (None: unbounded, infinity excluded).

    ``closed``: which ends belong to the interval, "both", "left", "right" or "neither". NaN never does;
    infinity only when ``high`` is ``math.inf`` and the right end is closed (it then has a meaning, such
    as "never").
    """

    type: type
    low: float | None
    high: float | None
    closed: str = "both"
    message: str | None = None
    optional: bool = False  # None is allowed (the field's "off" value)

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.optional else "must be set"
        if isinstance(value, bool) or not isinstance(value, Integral if self.type is int else Real):
            return f"must be {'an integer' if self.type is int else 'a number'}"
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        # Python compares ints with floats exactly: no float() of a 400-digit integer (it would overflow).
        if isinstance(value, float) and math.isnan(value):
            inside = False
        elif isinstance(value, float) and math.isinf(value):  # +inf only where the interval gives it a meaning
            inside = value > 0 and self.high == math.inf and right
        else:
            number = cast(float, value)  # an int or a finite float (bool and other types returned above)
            inside = (self.low is None or (number >= self.low if left else number > self.low)) and (
                self.high is None or self.high == math.inf or (number <= self.high if right else number < self.high)
            )
        return None if inside else (self.message or self.describe())

    def describe(self) -> str:
        if self.low is not None and self.high not in (None, math.inf):
            return (
                f"must be in {'[' if self.closed in ('both', 'left') else '('}{_number(self.low)}, "
                f"{_number(self.high)}{']' if self.closed in ('both', 'right') else ')'}"
            )
        kind = "an integer" if self.type is int else "a finite number"
        if self.low is None:
            return f"must be {kind}"
        return f"must be {kind} {'>=' if self.closed in ('both', 'left') else '>'} {_number(self.low)}"


@dataclass(frozen=True)
class Options:
    """One of the names in ``choices`` (a registry's keys)."""

    choices: Collection[str]  # any container of names: a registry dict, a tuple

    def problem(self, value: object) -> str | None:
        if value not in self.choices:
            return f"choose one of: {', '.join(sorted(self.choices))}"
        return None


# A URI from a config file (or an interpolation such as ${oc.env:...}) that holds credentials: the
# command line's are taken out before Hydra sees them (pipeline/credentials.py), a file's cannot be.
CREDENTIALS_IN_CONFIG = (
    "holds a password or secret (*** here), which would be stored with every run; give the URI on the "
    "command line (which takes its credentials out), or keep them in MLFLOW_TRACKING_USERNAME and "
    "MLFLOW_TRACKING_PASSWORD (a tracking server) or PGPASSWORD or ~/.pgpass (PostgreSQL)"
)


# A schema's default that is one of our resolvers: the dataclass is built with it unresolved when
# the schema is registered; ``validate`` checks the value it resolves to.
_SCHEMA_DEFAULT = re.compile(r"\$\{fnn_sweep_[a-z_]+:\}")


@dataclass(frozen=True)
class Text:
    """A string of at most ``max_length`` characters (``pattern``: what it must match, with ``message``)."""

    max_length: int | None = None
    optional: bool = False
    pattern: str | None = None
    message: str | None = None
    empty: bool = False  # the empty string is allowed

    uri: bool = False  # a URI, which may hold no password or secret (it would be stored with every run)

    def problem(self, value: object) -> str | None:
        if value is None:
            return None if self.optional else "must be set"
        if not isinstance(value, str):
            return "must be a string"
        if _SCHEMA_DEFAULT.fullmatch(value):  # a default like ${fnn_sweep_tracking_uri:}, checked once resolved
            return None
        if not value.strip() and not self.empty:
            return "must not be empty"
        if self.max_length is not None and len(value) > self.max_length:
            return f"is {len(value)} characters long; at most {self.max_length} are allowed"
        if self.pattern is not None and value and not re.fullmatch(self.pattern, value):
            return self.message
        if self.uri and redact(value) != value:
            return CREDENTIALS_IN_CONFIG
        return None


@dataclass(frozen=True)
class Flag:
    """true or false (OmegaConf has already typed it)."""

    def problem(self, value: object) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"


def _number(value: float) -> str:
    """128, not 128.0 or 1.28e+02; 0.5 as 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def field_names(schema: type) -> list[str]:
    """The fields of a dataclass schema."""
    return [f.name for f in fields(schema)]


def check_fields(obj: object, prefix: str, constraints: dict) -> None:
    """Raise ``ConfigError`` for the first field of ``obj`` that breaks its constraint.

    prefix : the field's config group, e.g. "train" (keys are named "train.seed").
    """
    for name, constraint in constraints.items():
        value = getattr(obj, name)
        problem = constraint.problem(value)
        if problem is not None:
            key = f"{prefix}.{name}" if prefix else name
            value = redact(value) if isinstance(value, str) else value  # a URI's password is never shown
            shown = repr(value) if isinstance(value, str) and len(value) <= 80 else _short(value)
            separator = ";" if isinstance(constraint, Options) else ":"
            raise ConfigError(f"{key}={shown} is not valid{separator} {problem}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:40]}...({len(text)} characters)"
