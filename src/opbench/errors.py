"""The one exception type for bad user input: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user (unknown name, malformed shape, corrupt file). Message: one line, names choices."""


def unknown(kind: str, value: str, choices: list[str] | tuple[str, ...]) -> UsageError:
    """`unknown backend 'x'; valid choices: a, b, c`."""
    return UsageError(f"unknown {kind} {value!r}; valid choices: {', '.join(choices)}")
