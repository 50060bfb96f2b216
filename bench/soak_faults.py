"""The soak test's faults, on a random schedule, through what `prismer-rt serve` offers: its
`/_control/faults` specs (prismer_cli/server/faults.py) and a sixth connection of the listener's
user, which makes the server close the oldest (an eviction).

What the stand-in cannot do yet is listed in MISSING and printed with the soak's table.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from soak_actors import Server, log

# Each fault, by name: the spec it sets (None: the eviction, which is not a spec).
FAULTS: dict[str, Callable[[random.Random], str | None]] = {
    "drop-after": lambda rng: f"drop-after={rng.randint(1, 20)}",  # connections aborted
    "upgrade-status=502": lambda rng: "upgrade-status=502",  # WebSocket refused: SSE, REST
    "refuse": lambda rng: f"refuse={rng.randint(1, 3)}",  # 503 to the next attempts
    "rate-limit": lambda rng: f"rate-limit={rng.randint(1, 3)}:1",  # 429 + Retry-After
    "half-open-after": lambda rng: f"half-open-after={rng.randint(1, 20)}",  # a silent peer
    "garbage": lambda rng: "garbage",  # frames that are not JSON
    "evict": lambda rng: None,  # five more connections of the listener's user
}
MISSING = (
    "server restarts that keep the store and reset ackIds: `serve` keeps everything in memory, "
    "so a restart loses the messages and the event log (a `--state FILE` or a "
    "`POST /_control/restart` would allow it)",
    "slow frames: no fault delays the frames a connection is sent (a `slow-frames=MS` spec)",
)
CONNECTIONS_PER_USER = 5  # the server closes the oldest when a user opens a sixth


@dataclass
class FaultInjector:
    server: Server
    listener_token: str
    rng: random.Random
    every: tuple[float, float]  # seconds between two faults
    lasting: tuple[float, float]  # seconds a fault stays
    stop: threading.Event = field(default_factory=threading.Event)
    injected: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # specs the server did not take

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(*self.every)):
            name = self.rng.choice(list(FAULTS))
            spec = FAULTS[name](self.rng)
            hold = self.rng.uniform(*self.lasting)
            if spec is None:
                self.evict(hold)
            elif self.server.set_faults([spec]):
                log(f"fault {spec} for {hold:.1f} s")
                self.stop.wait(hold)
                self.server.set_faults([])
            else:
                self.refused[name] += 1
                continue
            self.injected[name] += 1
        self.server.set_faults([])

    def evict(self, hold: float) -> None:
        """Open five connections of the listener's user (the server closes its oldest one,
        the listener's), hold them, close them."""
        import websocket

        url = "ws" + self.server.url[len("http") :] + f"/ws?token={self.listener_token}"
        sockets = []
        log(f"fault evict for {hold:.1f} s")
        try:
            for _ in range(CONNECTIONS_PER_USER):
                with contextlib.suppress(OSError, websocket.WebSocketException):
                    sockets.append(websocket.create_connection(url, timeout=5))
            self.stop.wait(hold)
        finally:
            for sock in sockets:
                with contextlib.suppress(OSError, websocket.WebSocketException):
                    sock.close()
