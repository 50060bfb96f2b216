"""prismer-rt: a command-line client for the Prismer Cloud real-time API."""

__version__ = "0.1.0"
