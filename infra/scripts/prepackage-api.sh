#!/usr/bin/env bash
# azd's prepackage hook of the function app: our modules go into the package compiled. Flex Consumption runs
# the app from its package, read-only, so Python cannot cache bytecode there and would compile every module of
# ours at each cold start (about 100 ms, more than all our modules' own execution). The pycs are checked-hash:
# used wherever the source in the package matches, whatever the files' times in the zip, and ignored (compiled
# in memory) where it does not, so a stale one never runs, here or in the package.
set -euo pipefail
cd "$(dirname "$0")/../.."
want=$(sed -n "s/^ *version: '\(3\.[0-9][0-9]*\)'.*/\1/p" infra/modules/functionapp.bicep | head -n 1)
# A candidate that is missing or fails (a pyenv shim for a version not selected here) is no Python: with none of
# the runtime's version the package goes without compiled modules, and azd goes on.
python="" found=""
for candidate in "python$want" python3; do
  have=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  if [ "$have" = "$want" ]; then
    python=$candidate
    break
  fi
  found=$have
done
if [ -z "$python" ]; then
  echo "prepackage: no Python $want on the PATH (found ${found:-none}), so the package goes without compiled" \
    "modules; the app then compiles them at each cold start"
  exit 0
fi
# -f: compileall keeps a pyc whose header matches the source's time, i.e. the timestamp pycs the developer's own
# runs wrote (.funcignore ships __pycache__): only the ones written here are checked-hash.
"$python" -m compileall -q -f --invalidation-mode checked-hash function_app.py shared
echo "prepackage: function_app.py and shared/ compiled for Python $want (checked-hash)"
