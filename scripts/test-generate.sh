#!/usr/bin/env bash
# The generator's end-to-end test (run by `just test-slow`): `ironclad generate module widgets` in
# a throw-away copy of this checkout, then what a team would run next, in the copy:
#   - cargo fmt --check and clippy -D warnings stay clean (the generated code is in house style);
#   - after `just openapi` (openapi.json is committed), the generated test passes, and so do the OpenAPI completeness tests (the new route is
#     documented, with examples) and the migrations' tests — against real Postgres;
#   - generating the same module again is refused and changes nothing.
#
#   scripts/test-generate.sh
#
# Environment:
#   DATABASE_URL              the Postgres server the copy's tests make their databases on
#   GENERATE_TEST_TARGET_DIR  CARGO_TARGET_DIR for the copy (default: <repo>/target/slow, shared
#                             with the rename test, so dependencies are built once)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export CARGO_TARGET_DIR="${GENERATE_TEST_TARGET_DIR:-$REPO/target/slow}"
export SQLX_OFFLINE=true CARGO_INCREMENTAL=0
TMP="$(mktemp -d "${TMPDIR:-/tmp}/test-generate.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
COPY="$TMP/repo"
mkdir "$COPY"
(
    cd "$REPO"
    git ls-files -z --cached --others --exclude-standard --deduplicate |
        while IFS= read -r -d '' f; do
            if [[ -e "$f" ]]; then printf '%s\0' "$f"; fi
        done |
        xargs -0 -r cp -P --parents --preserve=mode -t "$COPY" --
)
cd "$COPY"

cargo build --quiet --offline --locked --bin ironclad
ironclad="$CARGO_TARGET_DIR/debug/ironclad"
"$ironclad" generate module widgets
for file in src/widgets/mod.rs src/widgets/routes.rs tests/api/widgets.rs; do
    [[ -f "$file" ]] || { echo "test-generate: $file was not written" >&2; exit 1; }
done
grep -q 'crate::widgets::routes,' src/startup/mod.rs
grep -q 'WIDGETS_PAGE_SIZE=50' .env.example

before="$(find src tests migrations -type f -exec md5sum {} + | sort | md5sum)"
if "$ironclad" generate module widgets 2>/dev/null; then
    echo "test-generate: generating widgets twice was not refused" >&2
    exit 1
fi
after="$(find src tests migrations -type f -exec md5sum {} + | sort | md5sum)"
[[ "$before" == "$after" ]] || { echo "test-generate: the refused run changed files" >&2; exit 1; }

# What the generator's last line asks for: the committed document gains the new route.
"$CARGO_TARGET_DIR/debug/ironclad" openapi >/dev/null # the old binary still runs: a smoke test
cargo run --quiet --offline --locked --bin ironclad -- openapi >openapi.json
grep -q '"/api/v1/widgets"' openapi.json
cargo fmt --all -- --check
cargo clippy --quiet --offline --locked --workspace --all-targets -- -D warnings
cargo nextest run --offline --locked -p ironclad --test api \
    -E 'test(widgets) | test(openapi) | test(migrations)'
echo "test-generate: the generated module compiles, is clean and its tests pass"
