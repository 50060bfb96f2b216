"""`Handoff`: the listen engine's hand (listen/hooks.py `Hand`), called with each event it
printed, in order, and returning once the handlers accepted it.

- `--forward-to URL`: a `message.new` not sent by the listening user becomes one POST, signed
  as the server signs its webhooks (webhook.py), sender and conversation looked up
  (lookups.py); a 2xx accepts it. With `--forward-replies` a reply in the answer is posted to
  the conversation once (its idempotency key comes from the message id).
- `--exec CMD`: every event runs CMD (execute.py); exit 0 accepts it. Both given: both must.

A handler that fails is tried again as the server retries its webhooks: 3 attempts, 2 s then
5 s apart (PRISMER_RT_HANDLER_RETRY_*). Then, without a cursor file, the event is reported and
skipped (the server's own fire-and-forget); with `--cursor-file` (`patient`) it is never
skipped: the attempts go on with the usual backoff until one is accepted, and when --timeout
comes first `NotAccepted` ends the run (exit 124) before the cursor passes the event.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from prismer_cli import __version__
from prismer_cli.errors import NotAccepted, PrismerError
from prismer_cli.handoff import webhook
from prismer_cli.handoff.deliver import Forwarder, Outcome
from prismer_cli.handoff.execute import Executor, command_environment, event_environment
from prismer_cli.handoff.lookups import Lookups
from prismer_cli.handoff.report import Report
from prismer_cli.log import Log
from prismer_cli.output import Output
from prismer_cli.records import replace
from prismer_cli.retry import Deadline, delays
from prismer_cli.transport import Endpoint
from prismer_cli.tuning import Backoff, Handing

JSON = dict[str, Any]
REPLY_TYPES = ("text", "markdown", "code")


@dataclass(frozen=True)
class HandoffOptions:
    forward_to: str | None = None
    secret: str = webhook.DEFAULT_SECRET
    forward_replies: bool = False
    exec_command: str | None = None
    exec_timeout: float = 60.0
    patient: bool = False  # --cursor-file: a failing handler is waited for, never skipped
    meta: bool = False

    @property
    def active(self) -> bool:
        return self.forward_to is not None or self.exec_command is not None


@dataclass(frozen=True)
class Context:
    """What a Handoff needs of the command around it."""

    endpoint: Endpoint
    log: Log
    out: Output
    deadline: Deadline
    token: Callable[[], str]  # the current token (it may be refreshed while listening)
    me: str | None  # the listening user
    handing: Handing
    backoff: Backoff
    environ: dict[str, str]


class Handoff:
    def __init__(self, options: HandoffOptions, ctx: Context) -> None:
        self.options = options
        self.ctx = ctx
        self.report = Report(ctx.log, ctx.out, options.meta)
        self.forwarder = (
            Forwarder(options.forward_to, ctx.handing.forward_timeout, ctx.endpoint.trace)
            if options.forward_to is not None
            else None
        )
        self.lookups = Lookups(ctx.endpoint, ctx.log, ctx.token) if self.forwarder else None
        self.executor = (
            Executor(options.exec_command, options.exec_timeout)
            if options.exec_command is not None
            else None
        )

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()
        if self.lookups is not None:
            self.lookups.close()

    def __call__(self, line: bytes) -> None:
        """Hand one printed event on; returns once every handler accepted it (or, without a
        cursor file, gave up on it); raises NotAccepted when --timeout came first."""
        frame = orjson.loads(line)
        payload = frame.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        if self.forwarder is not None and self._forwarded(frame, payload):
            self._settle(_Forward(self, payload))
        if self.executor is not None:
            self._settle(_Exec(self, frame, payload, line))

    def _forwarded(self, frame: JSON, payload: JSON) -> bool:
        me = self.ctx.me
        return frame.get("type") == webhook.EVENT and not (me and payload.get("senderId") == me)

    def _settle(self, job: _Job) -> None:
        waits = self._waits()
        attempt = 0
        while True:
            attempt += 1
            outcome = job.attempt(self.ctx.deadline)
            if outcome.accepted:
                self.report.attempt(job.label, job.what, job.says(outcome), outcome, attempt, None)
                job.accepted(outcome, attempt)
                return
            wait = next(waits, None)
            self.report.attempt(job.label, job.what, job.says(outcome), outcome, attempt, wait)
            if wait is None or not self.ctx.deadline.sleep(wait):
                job.failed(outcome, attempt)
                if self.options.patient:
                    raise NotAccepted(
                        f"--timeout came before the handler accepted {job.label} ({job.what}): "
                        "the cursor stays before it, and the next run hands it on first"
                    )
                self.ctx.log.warning(
                    f"{job.what} did not accept {job.label} after {attempt} attempts; "
                    "skipped (with --cursor-file it would be retried until accepted)"
                )
                return

    def _waits(self) -> Iterator[float]:
        """The waits between attempts: the server's two, then (patient) the usual backoff."""
        yield self.ctx.handing.first_retry
        yield self.ctx.handing.second_retry
        if self.options.patient:
            yield from delays(self.ctx.backoff)

    def reply(self, payload: JSON, reply: JSON) -> None:
        """Post a handler's reply to the event's conversation, as the listening user, once."""
        conversation_id, message_id = payload.get("conversationId"), payload.get("id")
        label = message_id if isinstance(message_id, str) else "?"
        if not isinstance(conversation_id, str) or not isinstance(message_id, str):
            self.ctx.log.warning(f"no reply to {label}: the event names no conversation")
            return
        kind = reply.get("type")
        kind = kind if kind in REPLY_TYPES else "text"
        key = (
            "prismer-rt-reply-"
            + hashlib.sha256(f"{self.ctx.me or ''}:{message_id}".encode()).hexdigest()[:32]
        )
        from prismer_cli.transport.rest import RestClient

        endpoint = replace(self.ctx.endpoint, token=self.ctx.token()).until(self.ctx.deadline)
        rest = RestClient(endpoint, self.ctx.log)
        try:
            rest.send_message(conversation_id, reply["content"], kind, {}, key)
        except PrismerError as exc:
            self.ctx.log.warning(f"the reply to {label} was not sent: {exc}")
            return
        finally:
            rest.close()
        self.ctx.log.plain(f"{time.strftime('%H:%M:%S')} {label} replied in {conversation_id}")


class _Job:
    label: str
    what: str

    def attempt(self, deadline: Deadline) -> Outcome:
        raise NotImplementedError

    def says(self, outcome: Outcome) -> str:
        raise NotImplementedError

    def accepted(self, outcome: Outcome, attempt: int) -> None:
        raise NotImplementedError

    def failed(self, outcome: Outcome, attempt: int) -> None:
        raise NotImplementedError


class _Forward(_Job):
    """One message.new, POSTed to --forward-to: the body is built once, retries send it again."""

    def __init__(self, hand: Handoff, payload: JSON) -> None:
        assert hand.forwarder is not None and hand.lookups is not None
        self.hand, self.payload, self.forwarder = hand, payload, hand.forwarder
        message_id = payload.get("id")
        self.label = message_id if isinstance(message_id, str) else "message.new"
        self.what = f"POST {self.forwarder.url}"
        sender, conversation = hand.lookups.sender_and_conversation(payload)
        self.body = webhook.body(payload, sender, conversation, round(time.time() * 1000))
        self.headers = webhook.headers(self.body, hand.options.secret, f"prismer-rt/{__version__}")

    def attempt(self, deadline: Deadline) -> Outcome:
        return self.forwarder.post(self.body, self.headers, deadline)

    def says(self, outcome: Outcome) -> str:
        return str(outcome.status) if outcome.status is not None else "no answer"

    def _record(self, outcome: Outcome, attempt: int) -> JSON:
        return {
            "messageId": self.label,
            "url": self.forwarder.url,
            "status": outcome.status,
            "ms": outcome.ms,
            "attempt": attempt,
        }

    def accepted(self, outcome: Outcome, attempt: int) -> None:
        self.hand.report.record("forwarded", self._record(outcome, attempt))
        if outcome.reply is not None and self.hand.options.forward_replies:
            self.hand.reply(self.payload, outcome.reply)

    def failed(self, outcome: Outcome, attempt: int) -> None:
        record = {**self._record(outcome, attempt), "reason": outcome.detail}
        self.hand.report.record("forward-failed", record)


class _Exec(_Job):
    """One event, run through --exec."""

    def __init__(self, hand: Handoff, frame: JSON, payload: JSON, line: bytes) -> None:
        assert hand.executor is not None
        self.hand, self.executor, self.line = hand, hand.executor, line
        self.event = event_environment(frame, line)
        kind = self.event.get("PRISMER_EVENT_TYPE", "event")
        self.label = self.event.get("PRISMER_MESSAGE_ID") or kind
        if "PRISMER_SEQ" in self.event:
            self.label += f" (seq {self.event['PRISMER_SEQ']})"
        self.what = "exec"

    def attempt(self, deadline: Deadline) -> Outcome:
        env = command_environment(self.hand.ctx.environ, self.hand.ctx.token(), self.event)
        return self.executor.run(self.line, env, deadline)

    def says(self, outcome: Outcome) -> str:
        return outcome.detail

    def _record(self, outcome: Outcome, attempt: int) -> JSON:
        seq = self.event.get("PRISMER_SEQ")
        return {
            "messageId": self.event.get("PRISMER_MESSAGE_ID"),
            "eventType": self.event.get("PRISMER_EVENT_TYPE"),
            "seq": int(seq) if seq is not None else None,
            "status": outcome.status,
            "ms": outcome.ms,
            "attempt": attempt,
        }

    def accepted(self, outcome: Outcome, attempt: int) -> None:
        self.hand.report.record("executed", self._record(outcome, attempt))

    def failed(self, outcome: Outcome, attempt: int) -> None:
        self.hand.report.record(
            "exec-failed", {**self._record(outcome, attempt), "reason": outcome.detail}
        )
