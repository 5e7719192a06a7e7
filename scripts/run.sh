#!/usr/bin/env bash
# `make run`: the whole system on one machine — relay emulator, gateway and cloud app — with the
# embedded defaults (SQLite, redb) and the settings in .env.development. Ctrl-C stops everything.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
source "$here/scripts/env.sh"
cd "$here"

set -a; source .env.development; set +a
mkdir -p .state

# The same installer the tests use: dcmtk for the demo modality, the web client's tools.
"$here/scripts/deps.sh"
say "building relay-emulator, gateway and web"
cargo build --locked -p relay-emulator -p appliance -p web
bin="$CARGO_TARGET_DIR/debug"

# One signing key pair per side, made once and kept under .state/.
if [ ! -f .state/keys.env ]; then
  say "generating development signing keys into .state/keys.env"
  gw=$("$bin/gateway" keygen); web=$("$bin/web" keygen)
  {
    echo "GATEWAY_SIGNING_KEY=$(sed -n 's/^SIGNING_KEY=//p' <<<"$gw")"
    echo "GATEWAY_PUBLIC_KEY=$(sed -n 's/^PUBLIC_KEY=//p' <<<"$gw")"
    echo "WEB_SIGNING_KEY=$(sed -n 's/^SIGNING_KEY=//p' <<<"$web")"
    echo "WEB_PUBLIC_KEY=$(sed -n 's/^PUBLIC_KEY=//p' <<<"$web")"
  } > .state/keys.env
  chmod 600 .state/keys.env
fi
set -a; source .state/keys.env; set +a

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

say "relay emulator on ws://$RELAY_EMULATOR_LISTEN (admin http://$RELAY_EMULATOR_ADMIN)"
"$bin/relay-emulator" --listen "$RELAY_EMULATOR_LISTEN" --admin "$RELAY_EMULATOR_ADMIN" \
  --namespace "$AZURE_RELAY_NAMESPACE" \
  --rule "$AZURE_RELAY_KEY_NAME=$AZURE_RELAY_SHARED_ACCESS_KEY" \
  --entity "$AZURE_RELAY_HYBRID_CONNECTION" --entity "$AZURE_RELAY_EVENTS_HYBRID_CONNECTION" \
  --entity "$AZURE_RELAY_HYBRID_CONNECTION-2" --entity "$AZURE_RELAY_EVENTS_HYBRID_CONNECTION-2" &
pids+=($!)

say "gateway: worklist $MWL_AET on :$MWL_PORT, storage $PACS_AET on :$PACS_PORT"
SIGNING_KEY="$GATEWAY_SIGNING_KEY" PEER_PUBLIC_KEYS="$WEB_PUBLIC_KEY" "$bin/gateway" serve &
pids+=($!)

say "web app on http://$WEB_ADDR"
SIGNING_KEY="$WEB_SIGNING_KEY" PEER_PUBLIC_KEYS="$GATEWAY_PUBLIC_KEY" \
  GATEWAY_PUBLIC_KEY="$GATEWAY_PUBLIC_KEY" "$bin/web" serve &
pids+=($!)

# The seed makes clinicians only; the demo administrator is made as a hospital would make its
# first one, with `web admin create` (after the web app has seeded the empty database).
for _ in $(seq 1 150); do
  (exec 3<>"/dev/tcp/${WEB_ADDR%:*}/${WEB_ADDR##*:}") 2>/dev/null && break
  sleep 0.2
done
WEB_ADMIN_PASSWORD="$DEMO_ADMIN_PASSWORD" "$bin/web" admin create --if-absent \
  --email "$DEMO_ADMIN_EMAIL" --name "Demo Administrator" \
  --provider "North Breast Screening Service" --ods-code RXN
say "sign in as clinician@north.example / screening-demo-1, or as the administrator"
say "  $DEMO_ADMIN_EMAIL / $DEMO_ADMIN_PASSWORD (users, gateway settings, payloads, re-drive)"

say "running; Ctrl-C to stop. Play the modality for a participant sent from the web app with:"
say "  $bin/gateway emulate-modality --mwl 127.0.0.1:$MWL_PORT --pacs 127.0.0.1:$PACS_PORT --accession ACC…"
wait -n "${pids[@]}"
