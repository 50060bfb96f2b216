"""The environment variables that change what prismer-rt does, in one list.

The test suite clears them for every test (tests/conftest.py) and the benchmark for every client
(bench/environment.py), so that neither ever reads a user's real settings or token, nor goes
through a proxy; tests/test_envnames.py fails when the code reads a variable this list lacks.
"""

from __future__ import annotations

# Read by config.py and the commands (README "Configuration"); PRISMER_TRANSPORT and
# PRISMER_DIALECT are read by name from the option (config.py, `PRISMER_{NAME}`).
SETTINGS = (
    "PRISMER_URL",
    "PRISMER_BASE_URL",
    "PRISMER_TOKEN",
    "AGENT_TOKEN",
    "PRISMER_TOKEN_FILE",
    "PRISMER_TRANSPORT",
    "PRISMER_DIALECT",
    "PRISMER_PROFILE",
    "PRISMER_WEBHOOK_SECRET",
    "PRISMER_RT_OUTPUT",
    "PRISMER_RT_DEBUG",
)
# Read by requests and websocket-client (transport/wsupgrade.py reads http_proxy to leave a
# proxied upgrade to websocket-client): a loopback test or benchmark must never go through one.
PROXIES = (
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)
