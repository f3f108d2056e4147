#!/usr/bin/env bash
# `just fuzz [EXAMPLES]`: schemathesis, every check, against the app's production OpenAPI
# document, signed in as a verified user (with their personal organisation).
#
# It makes a database of its own on the server DATABASE_URL names, migrates it, starts a release
# `ironclad serve` on a free port with the fake LLM provider, runs schemathesis (installed from
# PyPI when missing) and drops the database. Exits non-zero on any failure schemathesis reports.
set -euo pipefail

examples="${1:-25}"
# schemathesis in the project's own virtualenv (scripts/py-tools.sh), not the system Python.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
st="$("$root/scripts/py-tools.sh" schemathesis)/st"

server="${DATABASE_URL:?DATABASE_URL names the Postgres server}"
name="ironclad_fuzz_$$"
base="${server%/*}"
export DATABASE_URL="$base/$name"
psql "$server" -qc "CREATE DATABASE $name"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$server" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
}
trap cleanup EXIT

cargo build --release --quiet -p ironclad -p fake-llm -p fake-stripe
target/release/ironclad migrate up >/dev/null
APP_ENV=test target/release/ironclad seed >/dev/null
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
llm_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
target/release/fake-llm "$llm_port" 2>/dev/null &
pids+=($!)
# Billing's Stripe calls go to the stand-in (it delivers its events back to this server).
stripe_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
target/release/fake-stripe --port "$stripe_port" \
    --webhook-url "http://127.0.0.1:$port/api/v1/webhooks/stripe" 2>/dev/null &
pids+=($!)
# Development settings (the mail sink, dev keys), with the limits generous enough that
# schemathesis meets the API, not the brute-force throttles.
APP_ENV=development PORT="$port" SMTP_URL=sink RUST_LOG=error \
    AI_PROVIDER_URL="http://127.0.0.1:$llm_port" STRIPE_API_BASE="http://127.0.0.1:$stripe_port/" \
    target/release/ironclad serve --no-workers &
pids+=($!)
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

email="fuzz-$$@example.com"
password="correct horse battery staple 42"
curl -fsS -X POST "$url/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"email\": \"$email\", \"password\": \"$password\"}" >/dev/null
psql "$DATABASE_URL" -qc "UPDATE users SET email_verified_at = now() WHERE email = '$email'"
token="$(curl -fsS -X POST "$url/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\": \"$email\", \"password\": \"$password\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"

me="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url/api/v1/me")"
[ "$me" = 200 ] || { echo "fuzz: the fuzz user's token is refused ($me)" >&2; exit 1; }
export IRONCLAD_FUZZ_TOKEN="$token"
# The hooks sign the fuzz user in again whenever a generated case ended its sessions.
export IRONCLAD_FUZZ_URL="$url" IRONCLAD_FUZZ_EMAIL="$email" IRONCLAD_FUZZ_PASSWORD="$password"
export SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"

# The document production serves (no /dev routes): what openapi.json commits. schemathesis.toml
# (found from the working directory) says how to sign in and what each operation may refuse.
target/release/ironclad openapi > "/tmp/$name.json"
"$st" run "/tmp/$name.json" --url "$url" \
    --checks all \
    --max-examples "$examples" \
    --seed 1 \
    --workers 2
