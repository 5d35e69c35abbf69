#!/usr/bin/env bash
# azd post-provision hook (azure.yaml). Runs after every successful `azd provision` / `azd up`,
# with the azd environment (including main.bicep's outputs) in its environment variables.
#
# 1. Marks ID_HASH_KEY as written (WRITE_ID_HASH_KEY=false), so later provisions never replace it.
# 2. Clears provider/mail secrets from the azd environment (.azure/<env>/.env): they are in Key
#    Vault now, and a stale copy there would overwrite a key rotated in the vault. Records the Key
#    Vault secret names in KEY_VAULT_SECRETS, so the preprovision hook does not ask for them again.
# 3. Writes local.settings.json for running the app locally against the deployed resources
#    (infra/scripts/write_local_settings.py; set LOCAL_SETTINGS_WRITE=false to skip).
# 4. Registers the provider webhook (python -m shared.events register-webhook --url WEBHOOK_URL)
#    when that command exists; otherwise prints what to run.
# 5. Checks that the presets the settings name (PRESET_HOST, PRESET_PARTICIPANT, PRESET_GUEST or
#    the provider's defaults) exist at the provider: python -m shared.presets check. A missing
#    preset stops `azd up` before the deployment, with one line per preset;
#    `python -m shared.presets check --create` creates them.
# PROVIDER_CHECKS=false skips 4 and 5 (no provider access from this machine).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

if [ -x .venv/bin/python ]; then
  python=.venv/bin/python
elif command -v python3 >/dev/null 2>&1; then
  python=python3
else
  echo "postprovision: python3 not found; skipping local.settings.json and webhook registration." >&2
  python=""
fi

# 1 and 2: azd environment bookkeeping.
if command -v azd >/dev/null 2>&1; then
  if [ "${WRITE_ID_HASH_KEY:-true}" != "false" ]; then
    azd env set WRITE_ID_HASH_KEY false
    echo "postprovision: ID_HASH_KEY is in Key Vault; WRITE_ID_HASH_KEY=false from now on."
  fi
  mail_secret=mail-client-secret
  if [ "${MAIL_CREDENTIAL_TYPE:-secret}" = "certificate" ]; then
    mail_secret=mail-client-certificate
  fi
  stored="${KEY_VAULT_SECRETS:-}"
  for pair in DYTE_API_KEY:dyte-api-key REALTIMEKIT_API_TOKEN:realtimekit-api-token "MAIL_CLIENT_CREDENTIAL:$mail_secret"; do
    name="${pair%%:*}"
    secret="${pair#*:}"
    if [ -n "${!name:-}" ]; then
      azd env set "$name" ""
      case ",$stored," in
        *",$secret,"*) ;;
        *) stored="${stored:+$stored,}$secret" ;;
      esac
      echo "postprovision: $name moved to Key Vault secret $secret and cleared from the azd environment."
    fi
  done
  if [ "$stored" != "${KEY_VAULT_SECRETS:-}" ]; then
    azd env set KEY_VAULT_SECRETS "$stored"
  fi
fi

# 3: local.settings.json.
if [ -n "$python" ] && [ "${LOCAL_SETTINGS_WRITE:-true}" != "false" ]; then
  "$python" infra/scripts/write_local_settings.py \
    --example local.settings.json.example \
    --output local.settings.json \
    --backup-dir .local || echo "postprovision: could not write local.settings.json (see above); continuing." >&2
fi

if [ "${PROVIDER_CHECKS:-true}" = "false" ]; then
  echo "postprovision: PROVIDER_CHECKS=false: webhook registration and the presets check skipped."
  exit 0
fi

# 4: provider webhook.
webhook_url="${WEBHOOK_URL:-}"
if [ -z "$webhook_url" ]; then
  echo "postprovision: WEBHOOK_URL is not set; cannot register the provider webhook." >&2
elif [ -n "$python" ] && grep -qs "register-webhook" shared/events.py shared/events/*.py 2>/dev/null; then
  echo "postprovision: registering the provider webhook at $webhook_url"
  "$python" -m shared.events register-webhook --url "$webhook_url" \
    || echo "postprovision: webhook registration failed; run it again with: $python -m shared.events register-webhook --url $webhook_url" >&2
else
  echo "postprovision: register the provider webhook once the app's settings are in place:"
  echo "    python -m shared.events register-webhook --url $webhook_url"
  echo "  (or add $webhook_url as the webhook URL in the provider's dashboard)."
fi

# 5: the presets the settings name must exist at the provider.
if [ -n "$python" ] && { [ -f shared/presets.py ] || [ -f shared/presets/__main__.py ]; }; then
  echo "postprovision: checking the provider's presets (python -m shared.presets check)"
  if ! "$python" -m shared.presets check; then
    echo "postprovision: the presets above are missing at the provider (or could not be checked)." >&2
    echo "  Create them: $python -m shared.presets check --create   then run azd up again" >&2
    echo "  (or name existing ones: azd env set PRESET_HOST|PRESET_PARTICIPANT|PRESET_GUEST <name>)." >&2
    exit 1
  fi
else
  echo "postprovision: no presets check in this version (shared.presets); make sure the provider has the presets."
fi
