#!/usr/bin/env bash
# The quick start's main job, end to end on this machine: start the local stand-in server,
# stream events with `prismer-rt subscribe` while `prismer-rt send` makes some, then stop.
set -euo pipefail

log=$(mktemp)
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT

prismer-rt serve --port 0 2>"$log" &
server=$!
for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.05; done
export PRISMER_URL=$(grep -o 'http://[^ ]*' "$log")
export PRISMER_TOKEN=demo-token   # the stand-in accepts any token unless given --token

echo "# prismer-rt serve is listening on $PRISMER_URL" >&2
prismer-rt subscribe demo-room --count 3 --timeout 10 &   # three events, then exit 0
listener=$!
# Wait until the server has the subscription (its /_control/log shows the frame).
python3 - "$PRISMER_URL" <<'PY'
import json, sys, time, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for _ in range(200):
    log = json.load(opener.open(sys.argv[1] + "/_control/log"))
    if any(record["kind"] == "ws_frame_in" for record in log):
        break
    time.sleep(0.05)
PY
prismer-rt send demo-room "hello from prismer-rt" >/dev/null
echo "a whole file, or any stdin, is one message" | prismer-rt send demo-room >/dev/null
printf '{"conversationId":"demo-room","content":"and JSON lines are many messages"}\n' \
  | prismer-rt send >/dev/null
wait "$listener"
echo "# done: three events above, one JSON line each" >&2
