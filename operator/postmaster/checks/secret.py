"""A value that must never be printed: passwords, API keys, bearer tokens, client secrets."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn, final

_MASK = "***"


@final
class Secret:
    """Holds a credential; ``repr``, ``str`` and ``format`` show ``***``, only :meth:`reveal` gives the value.

    It cannot be pickled or copied into a dict by accident (no ``__dict__``), and two secrets compare in constant
    time. Call :meth:`reveal` only at the moment the value goes onto the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        """The credential itself, for the one line of code that sends it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __copy__(self) -> Secret:
        return self
