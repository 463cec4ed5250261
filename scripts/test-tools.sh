#!/usr/bin/env bash
# Checks tool calling through the proxy, non-stream and stream: declares a get_weather tool,
# asks for the weather, and passes when a get_weather call comes back with JSON-object
# arguments (in a stream: its first delta carries index, id, type and name, as the Vercel AI
# SDK behind anyclaude requires). A model that answers in text instead is reported as such.
# Exit code 0 when both modes pass, 1 otherwise.
#
#   scripts/test-tools.sh [URL]          (default http://localhost:8081)
#   MLX_PROXY_API_KEY=... scripts/test-tools.sh URL   when the proxy requires a key
#
# Needs curl and python3 (no jq).
set -euo pipefail

# shellcheck source=client-common.sh
source "$(dirname "$0")/client-common.sh"
MAX_TOKENS="${MAX_TOKENS:-256}"

# The request body, stream or not ($1: true|false).
body() {
  python3 - "$1" "$MAX_TOKENS" <<'PY'
import json, sys
stream, max_tokens = sys.argv[1] == "true", int(sys.argv[2])
tool = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
print(json.dumps({"model": "default_model", "max_tokens": max_tokens, "stream": stream,
                  "tools": [tool], "tool_choice": "auto",
                  "messages": [{"role": "user", "content":
                                "What is the weather in Paris right now? Use the get_weather tool."}]}))
PY
}

# Judges a response file ($1: json|sse); prints one verdict line, exits 0 on a valid call.
judge() {
  python3 - "$1" "$2" <<'PY'
import json, sys
mode, path = sys.argv[1], sys.argv[2]
raw = open(path, encoding="utf-8", errors="replace").read()
calls, text, problems = {}, "", []
try:
    if mode == "json":
        msg = json.loads(raw)["choices"][0]["message"]
        text = msg.get("content") or ""
        for i, c in enumerate(msg.get("tool_calls") or []):
            calls[i] = {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
    else:
        for line in raw.splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise ValueError(f"stream error: {chunk['error']}")
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                for d in delta.get("tool_calls") or []:
                    idx = d.get("index")
                    fn = d.get("function") or {}
                    if idx not in calls:
                        if not (isinstance(idx, int) and isinstance(d.get("id"), str) and d.get("type") == "function"
                                and fn.get("name")):
                            problems.append(f"first delta of call {idx} lacks index/id/type/name: {d}")
                        calls[idx] = {"name": fn.get("name") or "", "arguments": ""}
                    calls[idx]["arguments"] += fn.get("arguments") or ""
except Exception as e:
    print(f"❌ not a valid chat completion ({e}): {' '.join(raw.split())[:200]}")
    sys.exit(1)
if not calls:
    print(f"❌ the model answered in text instead of calling get_weather: {' '.join(text.split())[:160]!r}")
    sys.exit(1)
for i, call in sorted(calls.items()):
    try:
        args = json.loads(call["arguments"])
        if not isinstance(args, dict):
            raise ValueError("not an object")
    except ValueError as e:
        problems.append(f"call {i} ({call['name']}) arguments are not a JSON object ({e}): {call['arguments'][:120]}")
        continue
    print(f"   tool call {i}: {call['name']}({json.dumps(args)})")
    if call["name"] != "get_weather":
        problems.append(f"call {i} names {call['name']!r}, not get_weather")
if problems:
    for p in problems:
        print(f"❌ {p}")
    sys.exit(1)
print(f"✅ {len(calls)} tool call(s) with valid JSON arguments")
PY
}

run_mode() {  # $1: json|sse
  local stream=false
  [[ "$1" == sse ]] && stream=true
  body "$stream" > "$WORK/body-$1.json"
  local result
  result="$(curl -sS -o "$WORK/out-$1" -w '%{http_code} %{time_total}' --max-time "${TIMEOUT:-900}" -N \
    -H 'Content-Type: application/json' -H 'Cache-Control: no-cache' ${AUTH[@]+"${AUTH[@]}"} \
    --data-binary @"$WORK/body-$1.json" "$URL/v1/chat/completions")" || { echo "❌ request failed: is the proxy running at $URL?"; return 1; }
  read -r code secs <<< "$result"
  echo "HTTP $code in $(python3 -c "import sys; print(round(float(sys.argv[1]) * 1000))" "$secs")ms"
  if [[ "$code" != 200 ]]; then
    echo "❌ HTTP $code: $(head -c 300 "$WORK/out-$1")"
    return 1
  fi
  judge "$1" "$WORK/out-$1"
}

echo "Tool-call test against $URL"
echo
echo "Test 1: Tool call, non-stream"
STATUS1=0; run_mode json || STATUS1=1
echo
echo "Test 2: Tool call, stream"
STATUS2=0; run_mode sse || STATUS2=1
echo
echo "📊 Summary"
echo "Non-stream: $([[ $STATUS1 == 0 ]] && echo PASS || echo FAIL)"
echo "Stream:     $([[ $STATUS2 == 0 ]] && echo PASS || echo FAIL)"
if [[ $STATUS1 == 0 && $STATUS2 == 0 ]]; then
  echo "✅ Tool calling works in both modes"
  exit 0
fi
echo "❌ Tool calling failed (see above)"
exit 1
