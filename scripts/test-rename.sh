#!/usr/bin/env bash
# The rename's end-to-end test (run by the slow suite): renames a throw-away copy of this checkout
# with scripts/rename.sh and checks the result.
#
#   scripts/test-rename.sh
#
# The copy holds the working-tree contents of every tracked file plus untracked, non-ignored files
# (so uncommitted work, and this script and rename.sh before they are committed, are tested too),
# made a fresh git repository with one commit so that rename.sh's clean-tree check applies. Then:
#   (d) rename.sh refuses bad input with exit 2 (and a dirty tree with exit 1), changing nothing;
#   (a) after `rename.sh acme_cloud "Acme Cloud"`, `git grep -i` finds no trace of the starter's
#       name, in contents or paths;
#   (b) acme_cloud is the package name in Cargo.toml, "Acme Cloud" is in README.md, the other
#       forms landed (acme-cloud-bench, the URN namespace, the Message-ID domain, the env prefix),
#       Cargo.lock is in Cargo's order, no file lost its mode;
#   (e) running it again is a no-op;
#   (c) the renamed tree compiles: cargo check --workspace --all-targets --offline --locked.
#
# Environment:
#   RENAME_TEST_TARGET_DIR   CARGO_TARGET_DIR for (c) (default: <repo>/target/rename-test; shared
#                            between runs so that dependencies are built once)
#   RENAME_TEST_SKIP_CHECK=1 skip (c)
#   RENAME_TEST_KEEP=1       keep the temporary copy (its path is printed)
#
# Exit status: 0 all checks passed, 1 a check failed.
set -euo pipefail
export LC_ALL=C

OLD="iron""clad"    # assembled so that this file never contains the starter's name
OLD_TITLE="Iron""clad"
OLD_UPPER="IRON""CLAD"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
FAILURES=0
ok() { printf 'ok:   %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  FAILURES=$((FAILURES + 1))
}
die() {
  printf 'test-rename: error: %s\n' "$*" >&2
  exit 1
}

if ! git -C "$REPO" grep -q -i -F -e "$OLD" 2>/dev/null; then
  echo "test-rename: skipped: this checkout no longer mentions the starter's name (already renamed)"
  exit 0
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/test-rename.XXXXXX")"
cleanup() {
  if [[ "${RENAME_TEST_KEEP:-}" == 1 ]]; then
    echo "test-rename: kept $TMP/repo"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
COPY="$TMP/repo"
mkdir "$COPY"

# --- the copy ---------------------------------------------------------------
(
  cd "$REPO"
  git ls-files -z --cached --others --exclude-standard --deduplicate |
    while IFS= read -r -d '' f; do
      # Tracked files deleted in the work tree are not copied.
      if [[ -e "$f" || -L "$f" ]]; then printf '%s\0' "$f"; fi
    done |
    xargs -0 -r cp -P --parents --preserve=mode -t "$COPY" --
)
cd "$COPY"
# A tracked path containing the name (the repository has none today) exercises the path renames.
mkdir -p ".rename-fixture/${OLD}-dir"
printf '%s %s %s\n%sError\n' "$OLD_TITLE" "$OLD" "$OLD_UPPER" "$OLD_TITLE" >".rename-fixture/${OLD}-dir/${OLD_TITLE}_notes.txt"
git init -q
git add -A -f
git -c user.email=t@t -c user.name=t -c commit.gpgsign=false commit -q --no-verify -m base
echo "test-rename: copy of $REPO in $COPY ($(git ls-files | wc -l) files)"

clean_tree() { [[ -z "$(git status --porcelain)" ]]; }

# --- (d) bad input: exit 2, nothing changed ---------------------------------
expect_status() {
  local want="$1"
  shift
  local got=0
  scripts/rename.sh "$@" >"$TMP/out" 2>&1 || got=$?
  if [[ "$got" == "$want" ]]; then
    ok "rename.sh $(printf '%q ' "$@")exits $want"
  else
    fail "rename.sh $(printf '%q ' "$@")exited $got, expected $want; its output:"
    sed 's/^/      /' "$TMP/out" >&2
  fi
}
expect_status 2 Bad-Name "X"
expect_status 2 "$OLD" X
expect_status 2 "${OLD}_two" X
expect_status 2 test X
expect_status 2 core X
expect_status 2 std X
expect_status 2 fn X
expect_status 2 migration X       # the workspace's migration crate
expect_status 2 fake_stripe X     # a workspace tool
expect_status 2 9lives X
expect_status 2 acme_ X
expect_status 2 acme__cloud X
expect_status 2 acme_cloud ""
expect_status 2 acme_cloud $'Acme\nCloud'
expect_status 2 acme_cloud 'Acme "Cloud"'
expect_status 2 acme_cloud "$OLD_TITLE Two"
expect_status 2 acme_cloud
expect_status 2 acme_cloud "Acme Cloud" extra
expect_status 2 --bogus acme_cloud "Acme Cloud"
if clean_tree; then ok "refused runs changed nothing"; else fail "a refused run changed the tree"; fi

# A dirty work tree is refused without --force (exit 1).
echo "dirty" >>README.md
expect_status 1 acme_cloud "Acme Cloud"
git checkout -q -- README.md
clean_tree || die "could not restore the copy's README.md"

# --- the rename ---------------------------------------------------------------
echo "test-rename: scripts/rename.sh acme_cloud \"Acme Cloud\""
if scripts/rename.sh acme_cloud "Acme Cloud" >"$TMP/rename.out" 2>&1; then
  sed 's/^/    | /' "$TMP/rename.out"
  ok "rename.sh acme_cloud \"Acme Cloud\" succeeded"
else
  sed 's/^/    | /' "$TMP/rename.out" >&2
  fail "rename.sh acme_cloud \"Acme Cloud\" failed"
  exit 1
fi

# --- (a) no leftovers ---------------------------------------------------------
if left="$(git grep -i -n -F -e "$OLD")"; then
  printf '%s\n' "$left" | sed 's/^/      /' >&2
  fail "git grep -i finds the starter's name after the rename ($(printf '%s\n' "$left" | wc -l) lines above)"
else
  ok "git grep -i finds no trace of the starter's name"
fi
if git diff --quiet HEAD -- scripts/rename.sh scripts/test-rename.sh; then
  ok "the rename scripts do not mention the name themselves (left unchanged)"
else
  fail "the rename changed scripts/rename.sh or scripts/test-rename.sh: they must not contain the starter's name"
fi
if left="$(git ls-files | grep -i -F -e "$OLD")"; then
  printf '%s\n' "$left" | sed 's/^/      /' >&2
  fail "tracked paths still contain the starter's name"
else
  ok "no tracked path contains the starter's name"
fi
if [[ -f .rename-fixture/acme-cloud-dir/acme_cloud_notes.txt ]] &&
  [[ "$(cat .rename-fixture/acme-cloud-dir/acme_cloud_notes.txt)" == $'Acme Cloud acme_cloud ACME_CLOUD\nAcmeCloudError' ]]; then
  ok "paths renamed (fixture moved to .rename-fixture/acme-cloud-dir/acme_cloud_notes.txt, its contents renamed)"
else
  fail "the fixture path was not renamed as expected"
fi

# --- (b) the new names --------------------------------------------------------
# The [package] section's name, not a dependency's.
if awk '/^\[/{s=$0} s=="[package]" && /^name *= *"acme_cloud"$/{f=1} END{exit !f}' Cargo.toml; then
  ok 'Cargo.toml: [package] name = "acme_cloud"'
else
  fail 'Cargo.toml: [package] name is not "acme_cloud"'
fi
if grep -q 'Acme Cloud' README.md; then ok "README.md mentions Acme Cloud"; else fail "README.md does not mention Acme Cloud"; fi
expect_text() { # <description> <fixed string> [pathspec...]
  local what="$1" text="$2"
  shift 2
  if git grep -q -F -e "$text" -- "$@"; then ok "$what: $text"; else fail "$what: '$text' not found"; fi
}
expect_text "bench package" 'name = "acme-cloud-bench"' tools/bench/Cargo.toml
expect_text "bench dependency" 'acme_cloud = { path = "../.." }' tools/bench/Cargo.toml
expect_text "lock: root package" 'name = "acme_cloud"' Cargo.lock
expect_text "lock: bench package" 'name = "acme-cloud-bench"' Cargo.lock
expect_text "problem URN namespace" 'urn:acme-cloud:problem:'
expect_text "Message-ID domain" 'acme-cloud.localhost'
expect_text "env prefix" 'ACME_CLOUD_'
expect_text "use paths" 'use acme_cloud::'
expect_text "TOTP issuer, percent-encoded" 'otpauth://totp/Acme%20Cloud:'
expect_text "product-name test passwords" 'acme cloud1234'
expect_text "product-name test passwords" 'Acme cloud2026!'
expect_text "dotenv value quoted" 'AUTH_TOTP_ISSUER="Acme Cloud"' .env.example

# Kubernetes object names and label values are DNS labels: the kebab form, never the snake one.
if bad="$(git grep -n -E "^[[:space:]]*(- )?name:[[:space:]]*[\"']?acme_cloud[\"']?[[:space:]]*\$|app\.kubernetes\.io/[a-z.-]+:[[:space:]]*[\"']?acme_cloud\b" -- '*.yaml' '*.yml')"; then
  printf '%s\n' "$bad" | sed 's/^/      /' >&2
  fail "Kubernetes names or labels in the snake form (not valid DNS labels)"
else
  ok "no Kubernetes name or label in the snake form"
fi
if [[ -f deploy/kubernetes/base/service.yaml ]]; then
  expect_text "Kubernetes Service name" '  name: acme-cloud' deploy/kubernetes/base/service.yaml
fi

# Cargo.lock in Cargo's order: packages by name, dependency lists by name (byte order).
if perl -0777 -ne '
  my @names = /^\[\[package\]\]\nname = "([^"]+)"/mg;
  for my $i (1 .. $#names) { exit 1 if $names[$i - 1] gt $names[$i] }
  for my $list (/^dependencies = \[\n((?: "[^"\n]*",\n)*)\]/mg) {
    my @deps = $list =~ /^ "([^" ]+)/mg;
    for my $i (1 .. $#deps) { exit 1 if $deps[$i - 1] gt $deps[$i] }
  }' Cargo.lock; then
  ok "Cargo.lock is sorted the way Cargo writes it"
else
  fail "Cargo.lock is out of Cargo's order (cargo build --locked would refuse it)"
fi
if modes="$(git diff HEAD --summary | grep 'mode change')"; then
  printf '%s\n' "$modes" >&2
  fail "file modes changed"
else
  ok "no file mode changed"
fi

# --- (e) idempotent -----------------------------------------------------------
before="$(git status --porcelain; git diff HEAD | sha256sum)"
expect_status 1 acme_cloud "Acme Cloud"            # dirty now: refused without --force
expect_status 0 --force acme_cloud "Acme Cloud"    # nothing left to rename
after="$(git status --porcelain; git diff HEAD | sha256sum)"
if [[ "$before" == "$after" ]]; then ok "a second run changes nothing"; else fail "a second run changed the tree"; fi

# --- (c) it compiles ------------------------------------------------------------
if [[ "${RENAME_TEST_SKIP_CHECK:-}" == 1 ]]; then
  echo "skip: cargo check (RENAME_TEST_SKIP_CHECK=1)"
else
  target="${RENAME_TEST_TARGET_DIR:-$REPO/target/rename-test}"
  echo "test-rename: cargo check --workspace --all-targets --offline --locked (CARGO_TARGET_DIR=$target)"
  # --locked: the Dockerfile builds with it, so the re-sorted Cargo.lock must be exactly Cargo's.
  if CARGO_TARGET_DIR="$target" SQLX_OFFLINE=true CARGO_INCREMENTAL=0 \
    cargo check --workspace --all-targets --offline --locked; then
    ok "the renamed tree compiles (cargo check)"
  else
    fail "cargo check failed on the renamed tree"
  fi
fi

if ((FAILURES)); then
  echo "test-rename: $FAILURES check(s) failed" >&2
  exit 1
fi
echo "test-rename: all checks passed"
