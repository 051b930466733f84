"""Name lookup shared by every registry, so errors always list the real keys."""

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, concept: str) -> T:
    """Return ``registry[name]`` or raise ValueError listing the valid names.

    Parameters
    ----------
    registry : dict
        Mapping from name to implementation.
    name : str
        The requested name.
    concept : str
        What the registry holds ("activation", "output", ...), for the message.
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(registry))
        raise ValueError(f"unknown {concept} {name!r}; valid: {valid}") from None
