#!/usr/bin/env bash
# Checks the proxy's response cache end to end: a first request that is a real miss (a fresh
# nonce in the prompt), then the identical request, which must be a HIT with the same answer.
# Prints both timings and the speed-up; exit code 0 when the cache works, 1 otherwise.
#
#   scripts/test-cache.sh [URL]          (default http://localhost:8081)
#   MLX_PROXY_API_KEY=... scripts/test-cache.sh URL   when the proxy requires a key
#
# Needs curl and python3 (no jq).
set -euo pipefail

# shellcheck source=client-common.sh
source "$(dirname "$0")/client-common.sh"
MAX_TOKENS="${MAX_TOKENS:-64}"

NONCE="$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
python3 - "$NONCE" "$MAX_TOKENS" > "$WORK/body.json" <<'PY'
import json, sys
nonce, max_tokens = sys.argv[1], int(sys.argv[2])
print(json.dumps({"model": "default_model", "max_tokens": max_tokens, "stream": False,
                  "messages": [{"role": "user",
                                "content": f"Cache test {nonce}: in one sentence, what is a cache?"}]}))
PY

# One request: writes WORK/<n>.json and WORK/<n>.headers, prints "<http status> <seconds>".
request() {
  curl -sS -o "$WORK/$1.json" -D "$WORK/$1.headers" -w '%{http_code} %{time_total}' \
    --max-time "${TIMEOUT:-900}" -H 'Content-Type: application/json' ${AUTH[@]+"${AUTH[@]}"} \
    --data-binary @"$WORK/body.json" "$URL/v1/chat/completions"
}

# Reads a response: prints "<X-Cache-Status>\t<first 120 chars of the answer>".
describe() {
  python3 - "$WORK/$1.json" "$WORK/$1.headers" <<'PY'
import json, sys
body_path, headers_path = sys.argv[1], sys.argv[2]
status = "-"
for line in open(headers_path, encoding="latin-1"):
    name, _, value = line.partition(":")
    if name.strip().lower() == "x-cache-status":
        status = value.strip()
try:
    data = json.load(open(body_path))
    msg = data["choices"][0]["message"]
    text = msg.get("content") or json.dumps(msg.get("tool_calls"))
except Exception:
    text = "(not a chat completion) " + open(body_path, errors="replace").read(200)
print(f"{status}\t{' '.join(str(text).split())[:120]}")
PY
}

ms() { python3 -c "import sys; print(round(float(sys.argv[1]) * 1000))" "$1"; }

echo "Cache test against $URL (nonce $NONCE)"
echo
# Test number $1 titled $2: sets CODE<n>, T<n> (seconds) and CACHE<n>, prints what it saw.
run_test() {
  local result code seconds cache text
  echo "Test $1: $2"
  result="$(request "$1")" || { echo "❌ Request failed: is the proxy running at $URL?"; exit 1; }
  read -r code seconds <<< "$result"
  IFS=$'\t' read -r cache text < <(describe "$1")
  echo "Response: $text"
  echo "HTTP $code, X-Cache-Status: $cache"
  echo "Time: $(ms "$seconds")ms"
  echo
  printf -v "CODE$1" '%s' "$code"
  printf -v "T$1" '%s' "$seconds"
  printf -v "CACHE$1" '%s' "$cache"
}

run_test 1 "First request (UNCACHED - should take longer)"
run_test 2 "Identical request (CACHED - should be instant)"

SAME="DIFFERENT from first"
if cmp -s <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"])' "$WORK/1.json" 2>/dev/null) \
          <(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"])' "$WORK/2.json" 2>/dev/null); then
  SAME="same as first"
fi
SPEEDUP="$(python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'{a / max(b, 1e-4):.0f}')" "$T1" "$T2")"

echo "📊 Summary"
echo "First request (uncached):     $(ms "$T1")ms"
echo "Second request (cached):      $(ms "$T2")ms ($SAME)"
if [[ "$CODE1" != 200 || "$CODE2" != 200 ]]; then
  echo "❌ Request failed (HTTP $CODE1 / $CODE2): is the proxy running at $URL?"
  exit 1
fi
if [[ "$CACHE1" != "MISS" ]]; then
  echo "❌ First request was $CACHE1, not a MISS: is the cache enabled (--cache memory or redis://)?"
  exit 1
fi
if [[ "$CACHE2" != "HIT" || "$SAME" != "same as first" ]]; then
  echo "❌ Cache not working: second request was $CACHE2 ($SAME)"
  exit 1
fi
echo "✅ Cache working! ${SPEEDUP}x speedup on cached request"
