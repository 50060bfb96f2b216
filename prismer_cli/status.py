"""Exit statuses: the one table of what `prismer-rt` returns to the shell (cli-contract.md)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 3
    CONNECTION = 4
    REJECTED = 5
    INVALID_INPUT = 6
    TIMEOUT = 124
    INTERRUPTED = 130
    TERMINATED = 143
