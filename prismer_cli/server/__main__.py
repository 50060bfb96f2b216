"""``python -m prismer_cli.server``: the stand-in server without the Typer CLI.

Takes the same options as ``prismer-rt serve``; see :class:`prismer_cli.server.ServerOptions`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prismer_cli.server import ServerOptions, serve


def parser() -> argparse.ArgumentParser:
    defaults = ServerOptions()
    p = argparse.ArgumentParser(
        prog="python -m prismer_cli.server",
        description="Run a local stand-in for the Prismer Cloud real-time server.",
    )
    p.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=defaults.port, help="0 picks a free port")
    p.add_argument("--dialect", choices=("docs", "server"), default=defaults.dialect)
    p.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN[=NAME]",
        help="accept this token (repeatable); none at all accepts any token",
    )
    p.add_argument("--fault", action="append", default=[], metavar="SPEC", help="inject a fault")
    p.add_argument("--auth-timeout", type=float, default=defaults.auth_timeout, metavar="S")
    p.add_argument("--ack-timeout", type=float, default=defaults.ack_timeout, metavar="S")
    p.add_argument("--heartbeat", type=float, default=defaults.heartbeat, metavar="S")
    p.add_argument("--token-ttl", type=float, default=defaults.token_ttl, metavar="SECONDS")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = ServerOptions(
        host=args.host,
        port=args.port,
        dialect=args.dialect,
        tokens=tuple(args.token),
        faults=tuple(args.fault),
        auth_timeout=args.auth_timeout,
        ack_timeout=args.ack_timeout,
        heartbeat=args.heartbeat,
        token_ttl=args.token_ttl,
    )
    return serve(options)


if __name__ == "__main__":
    sys.exit(main())
