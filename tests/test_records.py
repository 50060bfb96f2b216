"""The records that a one-shot command loads are plain classes (prismer_cli/records.py), not
dataclasses, which compile their methods at import (~0.5 ms each, issue 21); they still act as
the dataclasses they replace: the same repr, equality, hash and immutability."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from prismer_cli.auth.claims import Claims
from prismer_cli.auth.keeper import TokenSource
from prismer_cli.config import CommandLine, Setting, Settings
from prismer_cli.protocol.commands import SEND, Command, InvalidLine
from prismer_cli.protocol.dialects import DIALECTS, Hello
from prismer_cli.records import Frozen, Record, replace
from prismer_cli.retry import Deadline, Policy
from prismer_cli.transport.base import Endpoint, Resume
from prismer_cli.tuning import Backoff, Handing, Timeouts, Tuning
from prismer_cli.view import View, ViewFlags

RECORDS = (
    Timeouts,
    Endpoint,
    CommandLine,
    ViewFlags,
    Backoff,
    Handing,
    Tuning,
    Policy,
    Claims,
    TokenSource,
    Setting,
    Settings,
    View,
    Hello,
    Command,
    InvalidLine,
    Resume,
)


def test_the_records_of_a_one_shot_command_are_not_dataclasses() -> None:
    assert [r.__name__ for r in RECORDS if dataclasses.is_dataclass(r)] == []


def twin(record: type[Record]) -> type[Any]:
    """The dataclass the record stands for: its fields, in order, as plain fields."""
    fields = [(name, Any) for name in record.FIELDS]
    return dataclasses.make_dataclass(
        record.__name__, fields, frozen=issubclass(record, Frozen), eq=True
    )


SAMPLES: list[tuple[type[Record], tuple[Any, ...]]] = [
    (Backoff, (0.5, 8.0)),
    (Timeouts, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)),
    (Endpoint, ("http://h", "t", "ws", None, Timeouts(), Deadline(), None)),
    (CommandLine, ("http://h", None, "f", "ws", "docs", "p", True, False, True, False)),
    (ViewFlags, (True, "{type}", False, "never")),
    (Handing, (1.0, 2.0, 3.0)),
    (Tuning, (None, Backoff(), 1024, Handing())),
    (Policy, (Backoff(), 3, 30.0)),
    (Claims, ("u1", "alice", 1.0, 2.0)),
    (TokenSource, (Endpoint("http://h", "t"), None, "PRISMER_TOKEN", False)),
    (Setting, ("v", "env", None)),
    (View, ("pretty", None, True)),
    (Hello, (DIALECTS.get("docs"), "u1", "Alice")),
    (Command, (SEND, "c1", "hi", "text", None, {"parentId": "m1"}, 3, "k-1", True)),
    (InvalidLine, (4, "not JSON", False)),
    (Resume, ("sse", None, "e1", 3000, 17, "u1")),
    (Settings, (Setting("u", "x"), Setting("t", "y"), Setting("a", "z"), Setting("d", "w"), None)),
]


@pytest.mark.parametrize(("record", "args"), SAMPLES, ids=[r.__name__ for r, _ in SAMPLES])
def test_a_record_acts_as_its_dataclass(record: type[Record], args: tuple[Any, ...]) -> None:
    ours, again = record(*args), record(*args)
    theirs = twin(record)(*(getattr(ours, name) for name in record.FIELDS))
    assert repr(ours) == repr(theirs)
    assert ours == again and ours is not again
    assert ours != theirs  # another class, as two dataclasses are never equal
    first = record.FIELDS[0]
    if issubclass(record, Frozen):
        if all(not isinstance(getattr(ours, n), (dict, list)) for n in record.FIELDS):
            assert hash(ours) == hash(again) == hash(theirs)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(ours, first, None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(ours, first)
    else:
        with pytest.raises(TypeError):
            hash(ours)
        setattr(ours, first, "changed")
        assert getattr(ours, first) == "changed" and ours != again


def test_defaults_are_the_dataclasses_defaults() -> None:
    assert Tuning().backoff == Backoff() and Tuning().handing == Handing()
    assert Policy().backoff == Backoff() and Policy().max_retries is None
    assert (
        Command(SEND, "c1").extra == {}
        and Command(SEND, "c1").extra is not Command(SEND, "c2").extra
    )
    unset = Setting(None, "")
    assert Settings(unset, unset, unset, unset, None).warnings == []
    assert Resume() == Resume(None, None, None, None, None, None)


def test_replace_is_dataclasses_replace() -> None:
    endpoint = Endpoint("http://h", "old", timeouts=Timeouts(connect=3.0))
    changed = replace(endpoint, token="new")
    assert changed.token == "new" and changed.url == "http://h" and changed.timeouts.connect == 3.0
    assert endpoint.token == "old"
    with pytest.raises(TypeError):
        replace(endpoint, nonsense=1)
    given = CommandLine(token="t", verbose=True)
    assert CommandLine(url="http://u").merged(given) == CommandLine("http://u", "t", verbose=True)
