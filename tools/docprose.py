"""The hand-written parts of the man page; docgen.py adds everything the app itself defines.

Plain text: docgen escapes it for roff, so write `-`, quotes and backslashes as they are.
Text in `backticks` is set in bold (commands, options, variables, files). After editing, run
`python -m tools.docgen` (or `make docs`) to rewrite man/prismer-rt.1.
"""

from __future__ import annotations

from typing import Final

# The man page's date is the release date of prismer_cli.__version__: add a line per release.
RELEASE_DATES: Final[dict[str, str]] = {
    "0.1.0": "2026-11-27",
}

SUMMARY: Final = "command-line client for the Prismer Cloud real-time API"

DOCS_URL: Final = "https://prismer.cloud/docs/en/cookbook/realtime"

DESCRIPTION: Final = (
    "`prismer-rt` connects to Prismer Cloud over a WebSocket, or over Server-Sent Events and "
    "the REST endpoints when no WebSocket can be had (a proxy, `--transport sse`). It speaks both "
    "dialects of the protocol: the one the documentation page describes (docs) and the one the "
    "open-source server implements (server), and tells them apart by itself.",
    "`listen` and `subscribe` write every server event as one line of JSON (NDJSON) on stdout, "
    "flushed at once: the envelope as the server sent it, with the keys `type` and `payload` "
    "always present. Nothing else goes to stdout: logs and errors go to stderr. Authentication "
    "frames and the answers to the client's own protocol traffic (pong, reconnect.ack) are "
    "consumed, not printed; with `--meta`, lifecycle records such as prismer-rt.connected go to "
    "stdout too. A text frame that is not a JSON object is reported on stderr and skipped. "
    "An event delivered twice prints once; a new event about the same message prints (see "
    "DELIVERY for the exact rule). With `--since` and `--cursor-file`, stored events from the "
    "server's log come first, filtered as live ones are, and a cursor file carries a listen "
    "across runs (see CURSOR FILES).",
    "`--type` and `--conversation` are repeatable: OR within one option, AND across options. "
    "`subscribe` subscribes again after every reconnect. Reconnecting is on by default, with a "
    "backoff from 1 s doubling to 30 s with jitter, reset after each successful authentication; "
    "`--max-retries` N bounds the consecutive failed attempts (N retries, N+1 attempts) and "
    "`--no-reconnect` exits 4 when the connection is lost. A rejected token is never retried.",
    "`send` CONVERSATION_ID CONTENT sends one message; `send` CONVERSATION_ID, or CONTENT `-`, "
    "sends all of stdin as one message (one trailing newline removed). `send` with no arguments "
    'reads JSON lines from stdin: {"conversationId", "content", "type"?}, or any command object '
    "with an action (send_message, mark_read, subscribe) as on the documentation page; "
    '`mark-read` with no arguments reads {"conversationId", "upToMessageId"} lines. Blank lines '
    "are skipped, and all the commands of one stdin go over one connection, in order; the "
    "messages of one conversation are stored in input order (in the server dialect a "
    "conversation's next message is written once the previous one is confirmed), nothing is "
    "promised across conversations. Every non-blank "
    'line gets one JSON result line on stdout, in input order, with at least "ok": true or '
    "false, and the message where the server confirms it; a line that is not valid gets its own "
    "(see DELIVERY). Every message "
    'carries an idempotency key, in its result line too ("idempotencyKey"), so a re-send with it '
    "never posts twice; `--retry-file` FILE writes the commands not done, with their keys, for "
    "`send < FILE`. The docs dialect's WebSocket carries no key: there, a message re-sent after "
    "an uncertain result may post twice unless it went over REST (`--transport sse`).",
    "`--pretty` shows one human line per event (`listen`, `subscribe`, `chat`) or per result "
    "(`send`, `mark-read`): the local time, the type, the conversation, the sender's name and "
    "the content; the lifecycle and the server's error frames are lines of their own; on a "
    "terminal a line is cut to its width. `--format` TEMPLATE writes one line per event with "
    "each {PATH} (dotted as for `--match`; {received} is the receive time) replaced by that "
    "field. `--color` auto colours the human view only on a terminal, without NO_COLOR, TERM not "
    "dumb. NDJSON stays the default: `output` = pretty in the config file or PRISMER_RT_OUTPUT "
    "make `--pretty` the default, and `--json` gives NDJSON back.",
    "`--trace`, on every command, writes the wire to stderr, one line per item with its time and "
    "direction (> out, < in): the WebSocket upgrade, every frame (authentication, pings, pongs "
    "and acks included), every SSE event with its id, every HTTP request with its status and "
    "duration. Items over 2,000 characters are cut. The token is always shown as ***.",
    "`chat` CONVERSATION_ID, at a terminal, shows the conversation's last messages and then its "
    "events in the pretty view above an input line; each line typed is sent and confirmed; "
    "/read, /help, /quit (or Ctrl-D) are commands. With stdin not a terminal it is a two-way "
    "pipe on one connection: each line is sent, the events come out as NDJSON.",
    "`--forward-to` URL POSTs each message.new (not the listening user's own) to a webhook "
    "handler exactly as Prismer Cloud's webhooks do, signed with HMAC-SHA256 (X-Prismer-"
    "Signature), so the SDKs' PrismerWebhook accepts it; `--forward-replies` posts the handler's "
    '{"content"} answer to the conversation once. `--exec` CMD runs sh -c CMD for each event, the '
    "event's line on its stdin and in PRISMER_EVENT (with PRISMER_EVENT_TYPE, "
    "PRISMER_CONVERSATION_ID, PRISMER_MESSAGE_ID, PRISMER_SENDER_ID, PRISMER_SEQ), never the "
    "token; exit 0 accepts it. A failure is retried 2 s, then 5 s later; then skipped, or, with "
    "`--cursor-file`, retried until accepted: the cursor never passes an event its handler did "
    "not accept, and a run that `--timeout` ends first exits 124.",
    "A closed stdout (`prismer-rt listen | head -1`) ends the program quietly (see SIGNALS). The "
    "token never appears in any output, log or error: it is shown as token=***, and credentials "
    "in a URL as http://***@host.",
)

COMPLETION_NOTE: Final = (
    "`--install-completion` writes Typer's completion script for the shell it runs in: "
    "~/.bash_completions/prismer-rt.sh (sourced from ~/.bashrc), ~/.zfunc/_prismer-rt for zsh, "
    "or ~/.config/fish/completions/prismer-rt.fish. The same scripts are in the completions "
    "folder of the source tree."
)

CONNECTION: Final = (
    "These options are accepted before or after the subcommand alike: `prismer-rt --profile "
    "staging listen` and `prismer-rt listen --profile staging` are the same. Given in both "
    "places, the one after the subcommand wins.",
    "Each setting is taken from the first of: the command line; the environment (see "
    "ENVIRONMENT); the selected profile of the config file (see FILES); the official SDK's login "
    "in `~/.prismer/config.toml`; the defaults (URL https://cloud.prismer.dev, transport auto, "
    "dialect auto). So a user who registered with `prismer-py register` needs no set-up. "
    "`prismer-rt config show` prints each setting and where it came from.",
)

ENVIRONMENT: Final = (
    ("PRISMER_URL", "The base URL, as `--url` (http(s):// or ws(s)://)."),
    ("PRISMER_BASE_URL", "The base URL when PRISMER_URL is not set, as the official SDKs use it."),
    ("PRISMER_TOKEN", "The token (a JWT), as `--token` but out of sight of ps(1)."),
    ("AGENT_TOKEN", "The token when PRISMER_TOKEN is not set, as the documentation page uses it."),
    (
        "PRISMER_TOKEN_FILE",
        "A file holding the token, as `--token-file`, when neither variable above is set.",
    ),
    ("PRISMER_TRANSPORT", "auto, ws or sse, as `--transport`."),
    ("PRISMER_DIALECT", "auto, docs or server, as `--dialect`."),
    ("PRISMER_PROFILE", "The profile of the config file to use, as `--profile`."),
    (
        "PRISMER_WEBHOOK_SECRET",
        "The secret `--forward-to` signs with, as `--webhook-secret`; else the config key "
        "webhook_secret, else the server's default dev-webhook-secret.",
    ),
    ("XDG_CONFIG_HOME", "Where the config file is looked for; ~/.config when unset."),
    (
        "PRISMER_RT_OUTPUT",
        "pretty makes `--pretty` the default view of events and results, json (the default) "
        "NDJSON; `--json`, `--pretty` or `--format` on the command line win.",
    ),
    (
        "NO_COLOR",
        "When set and not empty, `--color auto` (the default) writes no colour. Help, logs and "
        "errors are never coloured.",
    ),
    (
        "PRISMER_RT_CONNECT_TIMEOUT",
        "Seconds for one connection attempt as a whole (TCP, TLS, handshake, authentication, "
        "any SSE fallback), or one REST request or page of the event log, answer included: a "
        "server that sends its bytes slowly cannot stretch it. Default 10.",
    ),
    (
        "PRISMER_RT_PING_INTERVAL",
        "Seconds of WebSocket silence before a keepalive ping is sent. Default 15.",
    ),
    (
        "PRISMER_RT_PING_TIMEOUT",
        "Seconds to wait for any frame after a ping before the connection counts as lost. "
        "Default 10.",
    ),
    (
        "PRISMER_RT_SSE_SILENCE",
        "Seconds without data or heartbeat after which an SSE stream counts as dead. Default 75.",
    ),
    (
        "PRISMER_RT_SEND_TIMEOUT",
        "Seconds after which send and mark-read give up a command whose connection attempts and "
        "retries have not succeeded (exit 4). Default 30.",
    ),
    ("PRISMER_RT_BACKOFF_INITIAL", "The first reconnect delay, in seconds. Default 1."),
    ("PRISMER_RT_BACKOFF_MAX", "The longest reconnect delay, in seconds. Default 30."),
    (
        "PRISMER_RT_MAX_MESSAGE_BYTES",
        "The largest WebSocket message the server reads, in bytes; send never writes a bigger "
        "line. Default 104857600 (100 MiB).",
    ),
    (
        "PRISMER_EVENT",
        "Set for `--exec`'s command: the event's line, as on stdout and on the command's stdin.",
    ),
    ("PRISMER_EVENT_TYPE", "Set for `--exec`'s command: the event's type."),
    (
        "PRISMER_CONVERSATION_ID",
        "Set for `--exec`'s command: the event's payload.conversationId, when it has one.",
    ),
    (
        "PRISMER_MESSAGE_ID",
        "Set for `--exec`'s command: the message the event is about (payload.messageId, or the "
        "payload.id of a message event), when it names one.",
    ),
    ("PRISMER_SENDER_ID", "Set for `--exec`'s command: payload.senderId, when it has one."),
    ("PRISMER_SEQ", "Set for `--exec`'s command: a stored event's seq in the event log."),
    ("PRISMER_RT_FORWARD_TIMEOUT", "Seconds for one POST to `--forward-to`. Default 10."),
    (
        "PRISMER_RT_HANDLER_RETRY_FIRST",
        "Seconds between a first failed attempt of `--forward-to` or `--exec` and the second. "
        "Default 2.",
    ),
    (
        "PRISMER_RT_HANDLER_RETRY_SECOND",
        "Seconds between the second attempt and the third (then, with `--cursor-file`, the "
        "reconnection backoff). Default 5.",
    ),
    (
        "PRISMER_RT_DEBUG",
        "When set and not empty, an unexpected error shows its Python traceback instead of a "
        "one-line message (for bug reports).",
    ),
)

ENVIRONMENT_NOTE: Final = (
    "The PRISMER_RT_ timers take a positive number of seconds; anything else is a usage error "
    "(exit 2)."
)

FILES: Final = (
    (
        "$XDG_CONFIG_HOME/prismer-rt/config.toml",
        "The config file (~/.config/prismer-rt/config.toml by default). Its top-level keys url, "
        "token, token_file, transport, dialect, no_refresh, output and webhook_secret form the "
        "default profile; a [profiles.NAME] table overrides them when NAME is selected with "
        "`--profile` or PRISMER_PROFILE. A config file holding a token or webhook_secret must be "
        "mode 0600: one that group or others can read is refused.",
    ),
    (
        "~/.prismer/config.toml",
        "The official SDK's login, written by `prismer-py register`: [auth] im_token and "
        "[default] base_url are used when nothing else gives a token or URL. Since that command "
        "writes it mode 0644, it is read anyway, with a warning to run chmod 600.",
    ),
    (
        "token files",
        "A token file (`--token-file`, PRISMER_TOKEN_FILE, token_file) holds the token on its "
        "first line and must be mode 0600, as ssh(1) requires of keys: a file that group or others "
        "can read is refused (exit 2) with the chmod command that fixes it.",
    ),
)

CONFIG_EXAMPLE: Final = (
    "A config file with a private token file, and a profile for the local server:",
    (
        'token_file = "~/.config/prismer-rt/token"',
        "",
        "[profiles.local]",
        'url = "http://127.0.0.1:8765"',
        'dialect = "server"',
    ),
)

EXAMPLES: Final = (
    (
        "Print the text of every new message:",
        ("prismer-rt listen --type message.new | jq -r '.payload.content'",),
    ),
    (
        "Answer every message, as the documentation page's auto-reply does (`--ignore-self` "
        "keeps the answers from being answered in turn):",
        (
            "prismer-rt listen --type message.new --ignore-self |",
            "  jq -c '{conversationId: .payload.conversationId, content: \"Message received!\"}' |",
            "  prismer-rt send",
        ),
    ),
    (
        "Wait up to a minute for one message in a conversation; exit 124 if none came:",
        ("prismer-rt subscribe conv_123 --count 1 --timeout 60 | jq -r .payload.content",),
    ),
    (
        "Count the events of the next hour by type:",
        ("prismer-rt listen --timeout 3600 | jq -r .type | sort | uniq -c",),
    ),
    (
        "Send a file as one message, then many messages over one connection, showing the "
        "ones that failed:",
        (
            "prismer-rt send conv_123 - < notes.txt",
            "jq -c '{conversationId: .id, content: .text}' in.json |",
            "  prismer-rt send | jq -c 'select(.ok | not)'",
        ),
    ),
    (
        "Mark each conversation read up to its newest message as messages arrive:",
        (
            "prismer-rt listen --type message.new |",
            "  jq -c '{conversationId: .payload.conversationId, upToMessageId: .payload.id}' |",
            "  prismer-rt mark-read",
        ),
    ),
    (
        "Try a webhook handler locally: each message, signed as Prismer Cloud signs it; then a "
        "cron-safe handler program, which sees again first an event it failed on:",
        (
            "PRISMER_WEBHOOK_SECRET=my-secret prismer-rt listen --forward-to "
            "http://localhost:8080/webhook",
            "prismer-rt listen --cursor-file ~/.local/state/inbox.cursor --no-follow --exec "
            "~/bin/on-message",
        ),
    ),
    (
        "Keep the token in a private file rather than on the command line:",
        (
            "mkdir -p ~/.config/prismer-rt",
            "(umask 077; printf '%s\\n' \"$TOKEN\" > ~/.config/prismer-rt/token)",
            "prismer-rt --token-file ~/.config/prismer-rt/token listen",
        ),
    ),
    (
        "Watch a conversation by eye, and see what goes over the wire while sending:",
        (
            "prismer-rt subscribe conv_123 --pretty",
            "prismer-rt send conv_123 hello --trace",
            "prismer-rt listen --format '{received} {type} {payload.content}'",
        ),
    ),
    (
        "Chat in a conversation from a terminal, or feed it lines from a script:",
        ("prismer-rt chat conv_123", "tail -f alerts.log | prismer-rt chat conv_123 --history 0"),
    ),
    (
        "Try everything offline against the local server:",
        (
            "prismer-rt serve --port 8765 &",
            "export PRISMER_URL=http://127.0.0.1:8765 PRISMER_TOKEN=dev-token",
            "prismer-rt subscribe demo --count 1 & sleep 1; prismer-rt send demo hello",
        ),
    ),
)

SEE_ALSO: Final = (("jq", "1"), ("websocat", "1"))
