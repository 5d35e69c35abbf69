#!/usr/bin/env bash
# azd predeploy hook of the `web` service (azure.yaml): runs in web/ after the SPA is built and the
# infrastructure provisioned, and writes dist/config.json from the deployment's outputs
# (infra/scripts/write_spa_config.py), so the same build serves any environment.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [ -x "$repo_root/.venv/bin/python" ]; then
  python="$repo_root/.venv/bin/python"
elif command -v python3 >/dev/null 2>&1; then
  python=python3
else
  echo "predeploy (web): python3 not found (docs/deploy.md lists the prerequisites)." >&2
  exit 1
fi

exec "$python" "$repo_root/infra/scripts/write_spa_config.py" --dist "${SPA_DIST_DIR:-dist}"
