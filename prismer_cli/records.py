"""Records written as plain classes: what @dataclass would make of them, without its cost.

@dataclass compiles each method it writes (`exec`): ~0.5 ms per frozen class, ~10 ms over the
classes a one-shot `send` loads, a tenth of its run (issue 21). The records on that path are
plain classes instead, each with its own `__init__`; these bases add what @dataclass would have
added over that `__init__`'s parameters (FIELDS): the same repr and equality; `Frozen` refuses
assignment (dataclasses.FrozenInstanceError) and hashes as a frozen dataclass does, `Record` is
mutable and unhashable. `replace` is dataclasses.replace for a record.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError  # loaded anyway: the option groups are dataclasses
from typing import Any, ClassVar, TypeVar


class Record:
    """A mutable record: repr and equality over FIELDS, the parameters of its `__init__` (the
    dataclass's fields, in order), which sets them with `self._init(locals())`; unhashable, as
    a mutable dataclass."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            code = init.__code__
            cls.FIELDS = code.co_varnames[1 : code.co_argcount]

    def _init(self, values: dict[str, Any]) -> None:
        """Set each field to its value in `values` (the `__init__`'s locals())."""
        for name in self.FIELDS:
            setattr(self, name, values[name])

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
    """An immutable record: hashable over FIELDS, which nothing may assign once `__init__`
    has set them."""

    def _init(self, values: dict[str, Any]) -> None:
        for name in self.FIELDS:
            object.__setattr__(self, name, values[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())
