"""The soak test's actors (bench/soak.py): the stand-in server, the producer, the durable
listener and the fault injector, each a thread that drives child processes; and the registry
that kills every child at exit.

Everything talks to 127.0.0.1 only. Every wait is bounded; each actor stops when its `stop`
event is set.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

HTTP_TIMEOUT = 5.0
TERM_GRACE = 10.0  # seconds a SIGTERMed child gets to exit before it counts as hung
LISTENING = re.compile(r"listening on (http://\S+)")


def log(message: str) -> None:
    print(f"soak {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


class Children:
    """Every child process the soak starts, so that each is killed at exit, by its own id."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def start(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, **kwargs)
        with self._lock:
            self._procs.append(proc)
        return proc

    def kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a live process in KiB; (0, 0) when it is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, ValueError):
        return 0, 0
    return rss, hwm


def read_cursor(path: Path) -> tuple[int | None, bool]:
    """(the cursor saved in a cursor file or None, whether the file is valid: absent is valid,
    present must be a JSON object with an integer cursor)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, True
    except OSError:
        return None, False
    try:
        cursor = json.loads(text).get("cursor")
    except (ValueError, AttributeError):
        return None, False
    return (cursor, True) if isinstance(cursor, int) else (None, False)


# -- the server ---------------------------------------------------------------------------------
class Server:
    """`prismer-rt serve --dialect server` on 127.0.0.1, port 0, and its control endpoints."""

    def __init__(self, children: Children, prismer_rt: list[str], env: dict[str, str]) -> None:
        self.tokens = ("soak-producer", "soak-listener")
        cmd = [*prismer_rt, "serve", "--host", "127.0.0.1", "--port", "0", "--dialect", "server"]
        for token in self.tokens:
            cmd += ["--token", token]
        self.proc = children.start(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        self.stderr: list[str] = []
        self.url = ""
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        if not ready.wait(30) or not self.url:
            raise RuntimeError("prismer-rt serve did not start: " + " ".join(self.stderr[-5:]))
        self.http = requests.Session()
        self.base: list[str] = []  # faults always on (concurrent-handling, where it exists)

    def _read(self, ready: threading.Event) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.stderr.append(line)
            match = LISTENING.search(line)
            if match and not self.url:
                self.url = match.group(1)
                ready.set()
        ready.set()

    def set_faults(self, faults: list[str]) -> bool:
        """Replace the active faults (the base ones stay); False if the server refused."""
        try:
            answer = self.http.post(
                self.url + "/_control/faults",
                json={"faults": [*self.base, *faults]},
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            log(f"faults {faults}: {exc}")
            return False
        return answer.status_code == 200

    def get(self, path: str, token: str = "", **params: str | int) -> Any:
        """GET a JSON answer from the server (as `token`'s user when given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = self.http.get(
            self.url + path, params=params, headers=headers, timeout=HTTP_TIMEOUT
        )
        answer.raise_for_status()
        return answer.json()

    def stored(self, conversation: str) -> list[dict[str, Any]]:
        """What the server stored in the conversation (GET /_control/messages)."""
        messages: list[dict[str, Any]] = self.get(
            "/_control/messages", conversationId=conversation
        )["messages"]
        return messages

    def log_seqs(self, token: str) -> dict[str, int]:
        """message id -> seq in the user's event log (GET /api/im/sync, every page)."""
        seqs: dict[str, int] = {}
        since = 0
        while True:
            data = self.get("/api/im/sync", token, since=since, limit=500)["data"]
            for event in data["events"]:
                body = event.get("data")
                if event.get("type") == "message.new" and isinstance(body, dict):
                    seqs.setdefault(str(body.get("id")), int(event["seq"]))
            if not data["events"] or not data["hasMore"]:
                return seqs
            since = data["cursor"]

    def direct_conversation(self, sender: str, to_user: str) -> str:
        """Create the direct conversation sender -> to_user (one setup message); its id."""
        answer = self.http.post(
            f"{self.url}/api/im/direct/{to_user}/messages",
            json={"content": "soak: setup"},
            headers={"Authorization": f"Bearer {sender}"},
            timeout=HTTP_TIMEOUT,
        )
        answer.raise_for_status()
        return str(next(iter(self.get("/_control/messages")["counts"])))


# -- the producer ---------------------------------------------------------------------------------
@dataclass
class Producer:
    """Sends `soak-NNNNNN` messages at a steady rate through `prismer-rt send` runs (JSON lines
    with fixed idempotency keys), one run per batch; kills some runs at random (SIGTERM or
    SIGKILL) and runs the batch again, same keys, until every line is confirmed."""

    children: Children
    cmd: list[str]
    env: dict[str, str]
    conversation: str
    rate: float
    batch_seconds: float
    kill_chance: float
    workdir: Path
    rng: random.Random
    stop: threading.Event = field(default_factory=threading.Event)
    produced: list[str] = field(default_factory=list)  # contents, each once
    unconfirmed: list[str] = field(default_factory=list)  # batches never confirmed at the end
    runs: int = 0
    kills: dict[str, int] = field(default_factory=lambda: {"SIGTERM": 0, "SIGKILL": 0})
    reruns: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    deadline: float = 0.0  # monotonic time by which a batch must be confirmed

    def line(self, number: int) -> bytes:
        content = f"soak-{number:06d}"
        body = {"conversationId": self.conversation, "content": content}
        return json.dumps({**body, "idempotencyKey": f"soak-key-{number:06d}"}).encode() + b"\n"

    def run(self) -> None:
        per_batch = max(1, round(self.rate * self.batch_seconds))
        spacing = 1.0 / self.rate
        next_due = time.monotonic()
        number = 0
        while not self.stop.is_set():
            batch = list(range(number, number + per_batch))
            number += per_batch
            self.produced += [f"soak-{n:06d}" for n in batch]
            due = [next_due + i * spacing for i in range(len(batch))]
            next_due += len(batch) * spacing
            attempt = 0
            while not self._attempt(batch, due if attempt == 0 else None, attempt):
                attempt += 1
                self.reruns += 1
                time.sleep(0.2 * min(attempt, 5))  # a refused run is not retried in a tight loop
                if time.monotonic() > self.deadline:
                    self.unconfirmed += [f"soak-{n:06d}" for n in batch]
                    log(f"producer: batch from {batch[0]} never confirmed")
                    break

    def _attempt(self, batch: list[int], due: list[float] | None, attempt: int) -> bool:
        """One send run for the batch; True if every line was confirmed (exit 0, all ok)."""
        self.runs += 1
        out_path = self.workdir / f"send-{self.runs:05d}.out"
        with out_path.open("wb") as out:
            proc = self.children.start(
                self.cmd, env=self.env, stdin=subprocess.PIPE, stdout=out,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        started = time.monotonic()
        kill_at = None
        if attempt < 3 and self.rng.random() < self.kill_chance:
            kill_at = started + self.rng.uniform(0.2, self.batch_seconds + 0.5)
        killed = self._feed(proc, batch, due, kill_at)
        if killed is None:
            killed = self._wait(proc, kill_at)
        code = proc.returncode
        if killed:
            self.kills[killed] += 1
            return False
        self.exits[str(code)] = self.exits.get(str(code), 0) + 1
        if code != 0:
            return False
        return confirmed(out_path) == len(batch)

    def _feed(
        self,
        proc: subprocess.Popen[bytes],
        batch: list[int],
        due: list[float] | None,
        kill_at: float | None,
    ) -> str | None:
        """Write the batch's lines, each at its time; kill the run if its moment comes first."""
        stdin: IO[bytes] | None = proc.stdin
        assert stdin is not None
        try:
            for i, number in enumerate(batch):
                when = due[i] if due else 0.0
                while True:
                    now = time.monotonic()
                    if kill_at is not None and now >= kill_at:
                        return self._kill(proc)
                    if now >= when:
                        break
                    time.sleep(min(when - now, 0.05))
                stdin.write(self.line(number))
                stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the run ended early: its exit status and output say how
        with contextlib.suppress(OSError):
            stdin.close()
        return None

    def _wait(self, proc: subprocess.Popen[bytes], kill_at: float | None) -> str | None:
        limit = time.monotonic() + 120
        while proc.poll() is None:
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                return self._kill(proc)
            if now > limit:
                proc.kill()
                proc.wait()
                return "SIGKILL"
            time.sleep(0.05)
        return None

    def _kill(self, proc: subprocess.Popen[bytes]) -> str:
        name = self.rng.choice(["SIGTERM", "SIGKILL"])
        proc.send_signal(getattr(signal, name))
        try:
            proc.wait(TERM_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        return name


def confirmed(out_path: Path) -> int:
    """How many result lines of a send run say ok."""
    count = 0
    for raw in out_path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            if json.loads(raw).get("ok") is True:
                count += 1
    return count
