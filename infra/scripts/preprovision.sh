#!/usr/bin/env bash
# azd pre-provision hook (azure.yaml). Runs before every `azd provision` / `azd up`, with the azd
# environment in its environment variables, and stops the run (exit 1, nothing created) with one line
# per missing or invalid setting (infra/scripts/check_provision_settings.py).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [ -x "$repo_root/.venv/bin/python" ]; then
  python="$repo_root/.venv/bin/python"
elif command -v python3 >/dev/null 2>&1; then
  python=python3
else
  echo "preprovision: python3 not found (docs/deploy.md lists the prerequisites)." >&2
  exit 1
fi

exec "$python" "$repo_root/infra/scripts/check_provision_settings.py"
