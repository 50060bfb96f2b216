"""The TokenKeeper: a token refreshed before it expires, for one command's whole life.

- Before each connection (`fresh`, `connect`): a token that is due (claims.py) is refreshed.
  A refusal of an expired token is exit 3 with what to do; of a token that still works, a
  warning (it is used until it expires).
- While `listen` runs, a background thread refreshes the token when it becomes due; the
  current connection is kept, the new token serves the next one.
- A token the server refuses on a *reconnect* gets one refresh and one more attempt.
- Each token is refreshed at most once, whatever the answer (the server may answer the same
  string twice in a second), and a new token is not due before half of its own lifetime has
  passed by this machine's clock: there is no refresh loop, even with a skewed clock.
- The new token is saved where the old one came from (stores.py), or kept in memory only.
- `request_reload` (SIGHUP) makes the next connection re-read the configuration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from prismer_cli.auth import api  # cheap: it imports requests when it calls the server
from prismer_cli.auth.claims import DAY, claims_of, expiry_note, expiry_warning
from prismer_cli.errors import AuthError, ConnectError, PrismerError
from prismer_cli.log import Log
from prismer_cli.records import Frozen, replace
from prismer_cli.retry import Deadline
from prismer_cli.transport import Connect, Connection, Endpoint, Resume, open_connection

if TYPE_CHECKING:  # a token from the environment has no store: stores.py is not imported
    from prismer_cli.auth.stores import TokenStore


class TokenSource(Frozen):
    """A resolved connection: the endpoint, where its token is kept, whether to refresh it."""

    endpoint: Endpoint
    store: TokenStore | None
    origin: str  # where the token came from, as `config show` says it
    refresh: bool

    def __init__(
        self, endpoint: Endpoint, store: TokenStore | None, origin: str, refresh: bool = True
    ) -> None:
        self._init(locals())


def what_to_do(origin: str) -> str:
    return (
        f"get a new token (prismer-rt register NAME, or prismer-py register) and put it in {origin}"
    )


class TokenKeeper:
    def __init__(
        self,
        source: TokenSource,
        log: Log,
        *,
        retry_delay: float = 30.0,
        reload: Callable[[], TokenSource] | None = None,
        connect: Connect = open_connection,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._token = source.endpoint.token
        self._log = log
        self._retry_delay = retry_delay  # after a refresh that failed for a network reason
        self._reload = reload
        self.open = connect  # what opens a connection with the current token
        self._clock = clock
        self._lock = threading.RLock()
        self._settled: set[str] = set()  # tokens refreshed (or refused): never asked again
        self._due = self._due_by_claims(self._token)
        self._connected = False
        self._warned = False
        self._save_warned = False
        self._reload_requested = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0

    # -- what the commands call ------------------------------------------------------------
    @property
    def token(self) -> str:
        with self._lock:
            return self._token

    def fresh(self, like: Endpoint | None = None, deadline: Deadline | None = None) -> Endpoint:
        """The endpoint to connect with: reloaded if asked, its token refreshed if due; with
        the timeouts and deadline of `like` (the caller's, cut to what is left). A refresh
        ends by `deadline`, else by `like`'s (the command's --timeout runs from its start)."""
        if deadline is None and like is not None:
            deadline = like.deadline
        with self._lock:
            if self._reload_requested:
                self._reload_now()
            if self._is_due():
                self._refresh_before_connecting(deadline)
            self._warn_if_expiring()
            endpoint = replace(self._source.endpoint, token=self._token)
        if like is None:
            return endpoint
        return replace(endpoint, timeouts=like.timeouts, deadline=like.deadline)

    def connect(self, endpoint: Endpoint, resume: Resume, log: Log) -> Connection:
        """open_connection with the current token; on a reconnect, one refresh after a refusal."""
        current = self.fresh(endpoint)
        try:
            conn = self.open(current, resume, log)
        except AuthError as exc:
            if not (self._connected and self._may_refresh()):
                raise self._explained(exc) from None
            self._log.info("the server refused the token on a reconnect; refreshing it once")
            with self._lock:
                self._refresh_or_fail()
                if self._token == current.token:  # the same token again: no use trying it
                    raise self._explained(exc) from None
                current = replace(current, token=self._token)
            try:
                conn = self.open(current, resume, log)
            except AuthError as again:
                raise self._explained(again) from None
        self._connected = True
        self._start_background()
        return conn

    def request_reload(self) -> None:
        """Re-read the configuration before the next connection (SIGHUP; safe in a signal
        handler, though listen calls it from its signal watcher thread: signals.py)."""
        self._reload_requested = True
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2.0)

    # -- refreshing ------------------------------------------------------------------------
    def _due_by_claims(self, token: str) -> float | None:
        claims = claims_of(token)
        return None if claims is None else claims.due_at()

    def _due_after_receipt(self, token: str) -> float | None:
        """Half the new token's lifetime from now, at the earliest (never a refresh loop)."""
        claims = claims_of(token)
        if claims is None or claims.exp is None:
            return None
        now = self._clock()
        lifetime = claims.lifetime if claims.lifetime is not None else claims.exp - now
        if lifetime <= 0:
            return None
        return now + lifetime - min(DAY, lifetime / 2)

    def _may_refresh(self) -> bool:
        with self._lock:
            return (
                self._source.refresh
                and self._token not in self._settled
                and claims_of(self._token) is not None
            )

    def _is_due(self) -> bool:
        return self._may_refresh() and self._due is not None and self._clock() >= self._due

    def _expired(self) -> bool:
        claims = claims_of(self._token)
        return claims is not None and claims.expired(self._clock())

    def _refresh(self, deadline: Deadline | None = None) -> None:
        """Ask once for a new token and adopt it, by the deadline if one is given; raises
        api.Refused or ConnectError."""
        token = self._token
        timeout = self._source.endpoint.timeouts.connect
        if deadline is not None:
            if deadline.expired():
                raise ConnectError("--timeout came before the token could be refreshed")
            timeout = deadline.cut(timeout)
        try:
            new = api.refresh(
                self._source.endpoint.url, token, timeout, self._source.endpoint.trace
            )
        except api.Refused:
            self._settled.add(token)
            raise
        self._settled.add(token)
        if new == token or new in self._settled:
            self._log.info("the server answered the same token; it is not asked again")
            return
        self._token = new
        self._log.secret = new
        self._due = self._due_after_receipt(new)
        self.refreshes += 1
        note = expiry_note(claims_of(new), self._clock()) or "has no expiry"
        self._log.info(f"refreshed the token; the new one {note}")
        self._save(new)

    def _save(self, token: str) -> None:
        store = self._source.store
        if store is None:
            self._log.info(
                f"the token comes from {self._source.origin}: the refreshed one is used in "
                "memory only and cannot be saved"
            )
            return
        from prismer_cli.auth.stores import CannotSave  # loaded already: the store is one

        try:
            store.save(token)
        except CannotSave as exc:
            if not self._save_warned:
                self._save_warned = True
                self._log.warning(f"{exc}; the refreshed token is used in memory only")
            return
        self._log.info(f"saved the refreshed token to {store.describe()}")

    def _refused(self, exc: api.Refused) -> AuthError:
        return AuthError(
            f"the server refused to refresh the token ({exc}); " + what_to_do(self._source.origin)
        )

    def _refresh_or_fail(self, deadline: Deadline | None = None) -> None:
        """Refresh now: a refusal is exit 3, a network failure a retryable ConnectError."""
        try:
            self._refresh(deadline)
        except api.Refused as exc:
            raise self._refused(exc) from None
        except ConnectError as exc:
            raise ConnectError(f"cannot refresh the token: {exc}") from None

    def _refresh_before_connecting(self, deadline: Deadline | None) -> None:
        if self._expired():
            self._refresh_or_fail(deadline)
            return
        try:
            self._refresh(deadline)
        except api.Refused as exc:
            note = expiry_note(claims_of(self._token), self._clock())
            self._log.warning(f"{self._refused(exc)}; until then the token works ({note})")
        except ConnectError as exc:
            self._log.info(f"cannot refresh the token yet: {exc}")

    def _explained(self, exc: AuthError) -> AuthError:
        """A refusal of an expired token, with what to do about it."""
        with self._lock:
            if not self._expired():
                return exc
            note = expiry_note(claims_of(self._token), self._clock())
            hint = what_to_do(self._source.origin)
            if not self._source.refresh:
                hint = "refreshing is off (--no-refresh, or no_refresh in the config); " + hint
            return AuthError(f"{exc}: the token {note}; {hint}")

    def _warn_if_expiring(self) -> None:
        warning = None if self._warned else expiry_warning(claims_of(self._token), self._clock())
        if warning is not None:
            self._warned = True
            self._log.warning(warning)

    # -- reloading -------------------------------------------------------------------------
    def _reload_now(self) -> None:
        self._reload_requested = False
        if self._reload is None:
            return
        try:
            source = self._reload()
        except PrismerError as exc:
            self._log.warning(f"cannot re-read the configuration: {exc}; keeping the current one")
            return
        token = source.endpoint.token
        if token in self._settled:  # a token this command has already replaced by a newer one
            token = self._token
        elif token != self._token:
            self._due = self._due_by_claims(token)
        self._source, self._token = source, token
        self._log.secret = token
        self._log.info(f"re-read the configuration; the token comes from {source.origin}")

    # -- in the background -----------------------------------------------------------------
    def _start_background(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="token-keeper", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = self._due if self._may_refresh() else None
            wait = None if due is None else max(0.0, due - self._clock())
            if self._wake.wait(wait):
                self._wake.clear()
                continue
            with self._lock:
                if not self._is_due():
                    continue
                try:
                    self._refresh()
                except api.Refused as exc:
                    note = expiry_note(claims_of(self._token), self._clock())
                    self._log.warning(f"{self._refused(exc)}; until then the token works ({note})")
                    continue
                except ConnectError as exc:
                    self._log.info(
                        f"cannot refresh the token yet: {exc}; again in {self._retry_delay:g} s"
                    )
                else:
                    continue
            self._stop.wait(self._retry_delay)
