"""Tokens over their lifetime (docs/cli.md "register and whoami"): what a JWT says about itself
(claims.py), where a token is kept and how a new one is written back (stores.py, tomledit.py),
the server's token endpoints (api.py), and the keeper that refreshes a token before it expires
(keeper.py)."""
