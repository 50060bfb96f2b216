"""``python -m prismer_cli.server``: the ``prismer-rt serve`` command without the client."""

from prismer_cli.server.command import main

if __name__ == "__main__":
    main()
