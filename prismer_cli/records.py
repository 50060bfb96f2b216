"""Records written as plain classes: what @dataclass would make of them, without its cost.

@dataclass compiles each method it writes (`exec`): ~0.5 ms per frozen class, ~10 ms over the
classes a one-shot `send` loads, a tenth of its run (issue 21). The records on that path are
plain classes instead, with their own `__init__` and, from these bases, the methods @dataclass
would have added over the names in FIELDS (in the order of the `__init__` parameters): the same
repr and equality; `Frozen` refuses assignment (dataclasses.FrozenInstanceError) and hashes as a
frozen dataclass does, `Record` is mutable and unhashable. The records that dataclasses.replace
fields are read from stay dataclasses; `replace` is dataclasses.replace for a record.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError  # loaded anyway: the option groups are dataclasses
from typing import Any, ClassVar, TypeVar


class Record:
    """A mutable record: repr and equality over FIELDS; unhashable, as a mutable dataclass."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self.FIELDS])

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented


R = TypeVar("R", bound=Record)


def replace(record: R, **changes: Any) -> R:
    """dataclasses.replace for a record: a new one, `changes` over its fields."""
    values = {name: getattr(record, name) for name in record.FIELDS}
    values.update(changes)
    return type(record)(**values)


class Frozen(Record):
    """An immutable record: `__init__` sets the fields with `_set`; hashable over FIELDS."""

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())
