#!/usr/bin/env bash
# azd's prepackage hook of the function app: our modules go into the package compiled. Flex Consumption runs
# the app from its package, read-only, so Python cannot cache bytecode there and would compile every module of
# ours at each cold start (about 100 ms, more than all our modules' own execution). The pycs are checked-hash:
# used wherever the source in the package matches, whatever the files' times in the zip, and ignored (compiled
# in memory) where it does not, so a stale one never runs, here or in the package.
set -euo pipefail
cd "$(dirname "$0")/../.."
want=$(sed -n "s/^ *version: '\(3\.[0-9][0-9]*\)'.*/\1/p" infra/modules/functionapp.bicep | head -n 1)
python=$(command -v "python$want" || command -v python3)
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$want" ]; then
  echo "prepackage: no Python $want on the PATH (found $have), so the package goes without compiled modules;" \
    "the app then compiles them at each cold start"
  exit 0
fi
"$python" -m compileall -q --invalidation-mode checked-hash function_app.py shared
echo "prepackage: function_app.py and shared/ compiled for Python $want (checked-hash)"
