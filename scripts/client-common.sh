# Sourced by scripts/test-*.sh: the proxy's URL (first argument, default the port anyclaude
# uses), a scratch folder removed on exit, and the key header when MLX_PROXY_API_KEY is set.
URL="${1:-http://localhost:8081}"
URL="${URL%/}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
AUTH=()
if [[ -n "${MLX_PROXY_API_KEY:-}" ]]; then
  AUTH=(-H "Authorization: Bearer ${MLX_PROXY_API_KEY}")
fi
