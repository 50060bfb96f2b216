"""The wire: every frame name, command shape and endpoint of both dialects (docs/protocol.md).

- dialects.py: what each dialect calls its frames, and how it says each command;
- commands.py: the commands `send` and `mark-read` take from arguments or stdin's JSON lines.
"""
