# Ironclad task runner. `just` lists the recipes; `just --show NAME` prints one.
#
# DATABASE_URL comes from the environment, else .env, else a local Postgres
# that scripts/db.sh starts (Docker Compose or a cluster in .data/postgres).

set dotenv-load := true
set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_INCREMENTAL := "0"
# apalis-postgres checks its SQL at compile time: against its bundled .sqlx data, not against
# whatever DATABASE_URL points at (which would fail on a database without the apalis schema).
export SQLX_OFFLINE := "true"

clippy_args := "--workspace --all-targets -- -D warnings"

# List the recipes
default:
    @just --list

# The fake LLM and the Stripe stand-in (hosted checkout page at http://127.0.0.1:12111) start
# unless real ones are configured; `--chaos` makes the stand-in duplicate and reorder deliveries.
#
# Run the API locally, offline: database, migrations, demo data, Stripe and LLM stand-ins (`--chaos`)
dev *flags:
    #!/usr/bin/env bash
    set -euo pipefail
    # Assign, then export: `export X="$(cmd)"` would hide a failing cmd.
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    cargo build --quiet -p ironclad -p fake-llm -p fake-stripe --bins
    target/debug/ironclad migrate up
    target/debug/ironclad seed
    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
    # No LLM provider configured: the local fake (tools/fake-llm) answers the AI example.
    if [ -z "${AI_PROVIDER_URL:-}" ]; then
        target/debug/fake-llm 8091 &
        pids+=($!)
        export AI_PROVIDER_URL=http://127.0.0.1:8091
    fi
    # No real Stripe key: the stand-in (tools/fake-stripe) plays Stripe, signing its webhook
    # deliveries with the app's development secret.
    if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
        stripe_port="${FAKE_STRIPE_PORT:-12111}"
        chaos=""
        [[ " {{ flags }} " == *" --chaos "* ]] && chaos="--chaos"
        target/debug/fake-stripe --port "$stripe_port" $chaos \
            --webhook-url "http://127.0.0.1:${PORT:-8080}/api/v1/webhooks/stripe" &
        pids+=($!)
        export STRIPE_API_BASE="http://127.0.0.1:$stripe_port/"
    fi
    target/debug/ironclad serve

# Add the demo products, plans and meters (and, in development, the demo account) where missing
seed:
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    cargo run --quiet -- seed

# Sign one Stripe event and send it to the running app: just trigger checkout.session.completed --order ID
trigger event *args:
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    cargo run --quiet -- stripe trigger {{ event }} {{ args }}

# What CI runs: fmt check, clippy -D warnings, cargo-deny, the test suite, the Kubernetes manifests' check
test: _ensure-nextest _fetch
    #!/usr/bin/env bash
    set -euo pipefail
    cargo fmt --all -- --check
    cargo clippy {{ clippy_args }}
    just deny
    # Tests create their own databases on the server this URL points at.
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    cargo nextest run --workspace
    # The Kubernetes manifests, against the API schemas (offline).
    scripts/validate-k8s.sh

# Scaffold a new layer wired into the composition root: just generate module projects
generate what name:
    cargo run --quiet -- generate {{ what }} {{ name }}

# Rename the starter to your product (run on a clean tree): just rename acme_cloud "Acme Cloud"
rename crate display *flags:
    scripts/rename.sh {{ flags }} {{ quote(crate) }} {{ quote(display) }}

# The slow checks CI also runs: generate a module and rename the starter in throw-away copies
test-slow: _ensure-nextest _fetch
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    scripts/test-generate.sh
    RENAME_TEST_TARGET_DIR="$PWD/target/slow" scripts/test-rename.sh

# Migrations on the dev database: just migrate [up | down N | status | fresh | refresh | reset]
migrate *args='up':
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    cargo run -- migrate {{ args }}

# Write the production OpenAPI document to ./openapi.json (committed: a test fails when it is stale)
openapi:
    @cargo run --quiet -- openapi > openapi.json.tmp || { rm -f openapi.json.tmp; exit 1; }
    @mv openapi.json.tmp openapi.json
    @echo "OpenAPI document written to {{ justfile_directory() }}/openapi.json" >&2

# schemathesis (every check) against the production OpenAPI document, signed in: `just fuzz [EXAMPLES]`
fuzz examples='25':
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    scripts/fuzz.sh {{ examples }}

# Every HTTP scenario is measured by our client and by wrk (a load generator we did not write),
# installed here from Debian's packages when missing (macOS: `brew install wrk`).
#
# Benchmarks on a release build; writes BENCHMARKS.md (`just bench --quick`, `--only jobs`)
bench *args:
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v wrk >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        echo "installing wrk (Debian)" >&2
        sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
        "${sudo[@]}" apt-get install -y -qq wrk >/dev/null 2>&1 ||
            { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq wrk; }
    fi
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    cargo build --release -p ironclad -p ironclad-bench --bins
    cargo run --release --quiet -p ironclad-bench -- {{ args }}

# Chaos experiments (kill workers, servers, Postgres) on a release build (`just chaos --quick`)
chaos *args:
    #!/usr/bin/env bash
    set -euo pipefail
    DATABASE_URL="$(scripts/db.sh url)"
    export DATABASE_URL
    cargo build --release -p ironclad -p ironclad-bench --bins
    cargo run --release --quiet -p ironclad-bench -- chaos {{ args }}

# Manage the dev Postgres: just db [start|stop|status|url]
db action='start':
    scripts/db.sh {{ action }}

# Format all crates in place
fmt:
    cargo fmt --all

# Clippy on the whole workspace, warnings as errors
lint:
    cargo clippy {{ clippy_args }}

# cargo-deny reads every target platform's crates (Windows, macOS, wasm, Android), which a build
# for this machine never downloads: they are fetched first. The advisories need the RustSec
# database, so the GitHub workflow runs those.
#
# cargo-deny, offline: licences (no copyleft), bans and sources (deny.toml)
deny: _ensure-deny _fetch
    cargo deny --offline check licenses bans sources

# Every crate Cargo.lock names, for every platform (a no-op once they are in the cargo cache). The
# throw-away copies of `just test-slow` build with --offline, and cargo-deny reads them all.
[private]
_fetch:
    @cargo fetch --locked --quiet

# Installs cargo-deny when it is missing.
[private]
_ensure-deny:
    @cargo deny --version >/dev/null 2>&1 || { echo "installing cargo-deny" >&2; cargo install cargo-deny --locked; }

# Installs cargo-nextest when it is missing.
[private]
_ensure-nextest:
    @cargo nextest --version >/dev/null 2>&1 || { echo "installing cargo-nextest" >&2; cargo install cargo-nextest --locked; }
