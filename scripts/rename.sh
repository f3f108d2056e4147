#!/usr/bin/env bash
# Renames the starter into your product: every mention of the starter's name in the tracked files
# (crate and package names, Cargo.lock, `use <crate>::` paths, env-var prefixes, problem-type URNs,
# the Message-ID domain, metric names, database names, templates, docs, Dockerfile, justfile,
# openapi.json, ...) and every tracked path that contains it.
#
#   scripts/rename.sh [--force] <crate_name> "<Display Name>"
#   just rename acme_cloud "Acme Cloud"
#
#   crate_name    snake_case (^[a-z][a-z0-9_]*$, 2-24 characters, no `__`, no trailing `_`): the
#                 package, binary and library name, env-var prefix (upper-cased), metric prefix,
#                 database names. Its kebab form (`_` -> `-`) is used where hyphens belong.
#   Display Name  the product's name as people read it: ASCII letters, digits, single spaces and
#                 hyphens (it lands unescaped in Rust/SQL/JSON strings, HTML, the MAIL_FROM mailbox
#                 and the TOTP issuer, so quotes, `&`, `<`, `:`, `%` ... are refused).
#   --force       run even though the work tree has uncommitted changes (by default it refuses, so
#                 that the rename is reviewable as one diff against HEAD).
#
# How each form of the starter's name (written old / Old / OLD by case) is mapped, in order:
#   old1234 (a test password)  -> the Display Name lower-cased + "1234"
#   Old2026! (a test password) -> the Display Name capitalised ("Acme cloud") + "2026!"
#       (the name repeated when shorter than 12 characters in all). The tests expect zxcvbn to
#       refuse both because they are built from the product's name (AUTH_TOTP_ISSUER, i.e. the
#       Display Name, is a known word): they must keep containing it, spaces included. The plain
#       mapping would not do: zxcvbn scores "acme_cloud1234" 4 (accepted).
#   otpauth://totp/Old: and issuer=Old -> the Display Name percent-encoded as totp-rs does
#       (every byte but A-Z a-z 0-9 - _ . ~), e.g. Acme%20Cloud
#   urn:old:       -> urn:<kebab>:          (a URN namespace id allows letters, digits, hyphens)
#   old.localhost  -> <kebab>.localhost     (host names: no underscores; also .dev/.com/.io/...)
#   "220 old", "250-old" (the test SMTP sink's greeting/EHLO domain) -> <kebab>
#   Kubernetes: `name: old` in YAML, `app.kubernetes.io/...: old` labels and the object names in
#       the manifests' README table -> <kebab> (object and container names are DNS labels)
#   KEY=Old in .env* files -> KEY="<Display Name>" (when it has a space); `key: Old` in YAML
#       -> key: "<Display Name>" (always: YAML would read `No` or `2048` as non-strings)
#   old-           -> <kebab>-              (the bench package, JWT audience, product slugs, the
#                                            Stripe usage identifier, temp-file prefixes)
#   OLD            -> <CRATE_NAME>          (env vars: OLD_ADMIN_PASSWORD, OLD_DB_PORT, ...)
#   Old inside an identifier (OldError) -> <CrateName> in PascalCase (none today)
#   Old            -> <Display Name>        (prose, templates, e-mail subjects, OpenAPI title)
#   old            -> <crate_name>          (crate/binary/package name, `use` paths, tracing
#                                            targets, metric prefix, database names and test/bench
#                                            database prefixes, docker image/user, JWT issuer)
#   Paths: old- -> <kebab>-, any other case -> <crate_name>.
# Any other spelling left over (e.g. a mixed case) aborts the run before anything is written.
#
# Cargo.lock: the workspace's own packages are renamed and the file is re-sorted the way Cargo
# writes it (packages by name, each package's dependencies by name), so `cargo build --locked`
# (the Dockerfile's) keeps working. A plain replacement is safe only because no registry package's
# name contains the starter's name: checked by hand when this script was written (the only matches
# were the two path packages, the root crate and the bench tool, plus the bench's dependency on
# the root crate), and checked again below at every run (the script refuses otherwise).
#
# Exit status: 0 done (or nothing to do), 1 refused or failed, 2 usage error.
set -euo pipefail
export LC_ALL=C

# The starter's name is assembled, never written out, so this script (and its test) contain no
# occurrence of it: they survive the rename unchanged and a grep for leftovers stays empty.
OLD="iron""clad"
OLD_TITLE="Iron""clad"
OLD_UPPER="IRON""CLAD"

usage() {
  cat >&2 <<EOF
Usage: scripts/rename.sh [--force] <crate_name> "<Display Name>"
  e.g. scripts/rename.sh acme_cloud "Acme Cloud"
EOF
}
usage_error() {
  printf 'rename.sh: %s\n' "$*" >&2
  usage
  exit 2
}
die() {
  printf 'rename.sh: error: %s\n' "$*" >&2
  exit 1
}

FORCE=0
ARGS=()
while (($#)); do
  case "$1" in
    --force) FORCE=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    --) shift; ARGS+=("$@"); break ;;
    -*) usage_error "unknown option: $1" ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
((${#ARGS[@]} == 2)) || usage_error "expected 2 arguments, got ${#ARGS[@]}"
CRATE="${ARGS[0]}"
DISPLAY="${ARGS[1]}"

# Run from the repository root whatever the caller's directory.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd -P)"

# ---------------------------------------------------------------------------
# Validation (exit 2)
# ---------------------------------------------------------------------------

[[ "$CRATE" =~ ^[a-z][a-z0-9_]*$ ]] ||
  usage_error "crate_name '$CRATE' must be snake_case: a lower-case letter, then a-z, 0-9 or _"
[[ "$CRATE" != *__* && "$CRATE" != *_ ]] ||
  usage_error "crate_name '$CRATE': no '__' and no trailing '_' (its kebab form names hosts and URNs)"
# 2+: a URN namespace id has at least 2 characters. 24: the test template database is
# <crate>_tpl_<8 hex>_<16 hex>_building, and Postgres truncates names beyond 63 bytes.
((${#CRATE} >= 2 && ${#CRATE} <= 24)) ||
  usage_error "crate_name '$CRATE' must be 2 to 24 characters (database names derived from it must fit 63)"
[[ "${CRATE,,}" != *"$OLD"* ]] ||
  usage_error "crate_name '$CRATE' is (or contains) the starter's own name; pick your product's"
case " $CRATE " in
  # Rust keywords (strict, reserved, 2018+/2024 editions), Cargo's names of the sysroot crates and
  # of its artifact directories, and Windows device names.
  " as " | " async " | " await " | " break " | " const " | " continue " | " crate " | " dyn " | \
  " else " | " enum " | " extern " | " false " | " fn " | " for " | " if " | " impl " | " in " | \
  " let " | " loop " | " match " | " mod " | " move " | " mut " | " pub " | " ref " | " return " | \
  " self " | " static " | " struct " | " super " | " trait " | " true " | " type " | " unsafe " | \
  " use " | " where " | " while " | " abstract " | " become " | " box " | " do " | " final " | \
  " gen " | " macro " | " override " | " priv " | " try " | " typeof " | " unsized " | \
  " virtual " | " yield " | \
  " std " | " core " | " alloc " | " proc_macro " | " test " | \
  " build " | " deps " | " examples " | " incremental " | \
  " con " | " prn " | " aux " | " nul " | " com"[1-9]" " | " lpt"[1-9]" ")
    usage_error "crate_name '$CRATE' is a reserved word (Rust keyword, sysroot crate or Cargo/OS name)"
    ;;
esac

[[ -n "$DISPLAY" ]] || usage_error "the Display Name must not be empty"
[[ "$DISPLAY" != *$'\n'* && "$DISPLAY" != *$'\r'* ]] || usage_error "the Display Name must be one line"
display_re='^[A-Za-z0-9]([A-Za-z0-9 -]*[A-Za-z0-9])?$'
[[ "$DISPLAY" =~ $display_re && "$DISPLAY" != *"  "* ]] ||
  usage_error "Display Name '$DISPLAY': use ASCII letters, digits, single spaces and hyphens (starting and ending with a letter or digit)"
((${#DISPLAY} <= 60)) || usage_error "the Display Name must be at most 60 characters"
[[ "${DISPLAY,,}" != *"$OLD"* ]] ||
  usage_error "Display Name '$DISPLAY' contains the starter's own name; pick your product's"

# ---------------------------------------------------------------------------
# Preconditions (exit 1; the name checks that need the repository: exit 2)
# ---------------------------------------------------------------------------

command -v perl >/dev/null || die "perl is required"
TOP="$(git rev-parse --show-toplevel 2>/dev/null)" || die "$ROOT is not a git work tree"
[[ "$(cd "$TOP" && pwd -P)" == "$ROOT" ]] || die "expected $ROOT to be the repository root (it is $TOP)"

mapfile -d '' FILES < <(git grep -z -I -l -i -F -e "$OLD" 2>/dev/null || true)
mapfile -d '' PATHS < <(git ls-files -z | grep -z -i -F -e "$OLD" || true)
NOTHING=0
((${#FILES[@]} || ${#PATHS[@]})) || NOTHING=1

# Names already taken (exit 2). Skipped once renamed: the new names are then ours.
if ((!NOTHING)); then
  # A package of the same name (dependencies and workspace members such as `migration`,
  # `fake-stripe`): `-` and `_` are the same to Cargo. The bench package becomes <kebab>-bench.
  if [[ -f Cargo.lock ]]; then
    while IFS= read -r existing; do
      norm="${existing//-/_}"
      [[ "$norm" == *"$OLD"* ]] && continue
      if [[ "$norm" == "$CRATE" || "$norm" == "${CRATE}_bench" ]]; then
        usage_error "crate_name '$CRATE' collides with the package '$existing' in Cargo.lock"
      fi
    done < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sort -u)
  fi
  # A path root the Rust code already uses (a dependency's library name such as `stripe`, or a
  # module such as `billing`): the renamed library would be ambiguous with it.
  if git grep -q -E "(^|[^A-Za-z0-9_:])${CRATE}::" -- '*.rs' 2>/dev/null; then
    usage_error "crate_name '$CRATE' is already a path root in the Rust code (\`${CRATE}::\`): a dependency or module has that name"
  fi
fi

if ((!FORCE)) && [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  git status --short --untracked-files=no >&2
  die "the work tree has uncommitted changes: commit or stash them first, so that the rename is one diff to review (or pass --force)"
fi

if ((NOTHING)); then
  echo "rename.sh: nothing to rename: no tracked file or path mentions the starter's name (already renamed?)"
  exit 0
fi

# Cargo.lock: refuse if a registry (or git) package's name contains the starter's name; renaming
# it would point the lock at a crate that does not exist.
if [[ -f Cargo.lock ]]; then
  foreign="$(RN_OLD="$OLD" perl -0777 -ne '
    for my $block (split /^(?=\[\[package\]\]$)/m) {
      my ($name) = $block =~ /^name = "([^"]+)"$/m or next;
      print "$name\n" if index(lc $name, $ENV{RN_OLD}) >= 0 && $block =~ /^source = /m;
    }' Cargo.lock)"
  [[ -z "$foreign" ]] ||
    die "Cargo.lock has non-workspace packages whose names contain the starter's name ($foreign): rename by hand"
fi

# ---------------------------------------------------------------------------
# The rename
# ---------------------------------------------------------------------------

KEBAB="${CRATE//_/-}"
UPPER="${CRATE^^}"

read -r -d '' RENAME_PL <<'PERL' || true
use strict;
use warnings;

my ($old, $Old, $OLD) = @ENV{qw(RN_OLD RN_OLD_TITLE RN_OLD_UPPER)};
my ($snake, $kebab, $upper, $display) = @ENV{qw(RN_SNAKE RN_KEBAB RN_UPPER RN_DISPLAY)};

# totp-rs percent-encodes the issuer: everything but ASCII alphanumerics and - _ . ~
(my $enc = $display) =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord $1)/ge;
# The two test passwords the tests expect zxcvbn to refuse because they are built from the
# product's name (a known word): the name, lower-cased / capitalised (more capitals would multiply
# zxcvbn's guesses), repeated up to the 12-character minimum (so the tests see zxcvbn's refusal,
# not the length check's; a repeat is cheap, padding with other characters is not), then the
# original suffix. Checked with zxcvbn-rs: about 1.5e4 and 1e7 guesses whatever the name, as for
# the originals; the threshold (Score::Three) is 1e8.
my ($pw1, $pw2) = (lc $display, ucfirst lc $display);
$pw1 .= lc $display while length($pw1) + 4 < 12;
$pw2 .= ucfirst lc $display while length($pw2) + 5 < 12;
$pw1 .= '1234';
$pw2 .= '2026!';
my $pascal = join '', map { ucfirst } split /_/, $snake;
my $env_value = $display =~ /\A[A-Za-z0-9_.-]+\z/ ? $display : "\"$display\"";

# [label, pattern, replacement (a sub receiving the pattern's first group), only in files matching],
# applied in this order.
my @rules = (
    ['test password (lower)', qr/\b\Q$old\E1234\b/, sub { $pw1 }],
    ['test password (title)', qr/\b\Q$Old\E2026!/, sub { $pw2 }],
    ['otpauth label', qr{otpauth://totp/\Q$Old\E:}, sub { "otpauth://totp/$enc:" }],
    ['otpauth issuer', qr/([?&]issuer=)\Q$Old\E\b/, sub { "$_[0]$enc" }],
    ['problem URN', qr/\burn:\Q$old\E:/, sub { "urn:$kebab:" }],
    ['host name', qr/\b\Q$old\E(?=\.(?:localhost|dev|com|io|app|net|org|test|example)\b)/, sub { $kebab }],
    ['SMTP greeting', qr/\b(2[25]0[ -])\Q$old\E\b/, sub { "$_[0]$kebab" }],
    # Kubernetes object and container names are DNS labels (no `_`); label values follow them.
    ['k8s object name', qr/^([ \t]*(?:-[ \t]+)?name:[ \t]*["']?)\Q$old\E(?=["']?[ \t]*$)/m, sub { "$_[0]$kebab" }, qr/\.ya?ml\z/],
    ['k8s label value', qr/(app\.kubernetes\.io\/[\w.-]+:[ \t]*["']?)\Q$old\E\b/, sub { "$_[0]$kebab" }],
    ['k8s doc table', qr/(\|\s*`[^`|\n]*\.ya?ml`\s*\|\s*`)\Q$old\E(?=`)/, sub { "$_[0]$kebab" }],
    # A bare value with a space breaks dotenv files (dotenvy and just refuse `K=a b`), and YAML
    # would read some names as booleans or numbers (`No`, `2048`): quote them there.
    ['dotenv value', qr/^([ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*=)\Q$Old\E(?=[ \t]*$)/m, sub { "$_[0]$env_value" }, qr{(?:\A|/)\.env[^/]*\z}],
    ['YAML value', qr/^([ \t]*(?:-[ \t]+)?[A-Za-z_][A-Za-z0-9_.-]*:[ \t]+)\Q$Old\E(?=[ \t]*$)/m, sub { "$_[0]\"$display\"" }, qr/\.ya?ml\z/],
    ['kebab (name-)', qr/\Q$old\E-/, sub { "$kebab-" }],
    ['UPPER', qr/\Q$OLD\E/, sub { $upper }],
    # Inside an identifier (OldError-like; none today) the Display Name would not compile.
    ['PascalCase ident', qr/(?<=[A-Za-z0-9_])\Q$Old\E|\Q$Old\E(?=[A-Za-z0-9_])/, sub { $pascal }],
    ['Title', qr/\Q$Old\E/, sub { $display }],
    ['lower', qr/\Q$old\E/, sub { $snake }],
);

my $sort_lock;
$sort_lock = sub {
    # Cargo writes [[package]] entries sorted by name (then version, source) and each
    # `dependencies` list sorted by name (then version, source). Only the renamed entries move,
    # so a stable sort by name, other ties kept in their written order, reproduces Cargo's order.
    my ($text) = @_;
    my @parts = split /^(?=\[)/m, $text;
    return undef unless @parts && $parts[0] !~ /^\[/;
    my @pkg = grep { $parts[$_] =~ /^\[\[package\]\]\n/ } 0 .. $#parts;
    return $text unless @pkg;
    return undef if $pkg[-1] - $pkg[0] + 1 != @pkg;    # packages not contiguous: leave it alone
    my (@blocks, @seps);
    for my $i (@pkg) {
        my ($body, $sep) = $parts[$i] =~ /\A(.*?)(\n*)\z/s;
        $body =~ s{^(dependencies = \[\n)((?: "[^"\n]*",\n)*)(\])}{
            my ($open, $list, $close) = ($1, $2, $3);
            my @deps = $list =~ /^( "[^"\n]*",\n)/mg;
            my @keyed = map { [ ($deps[$_] =~ /"([^" ]+)/)[0], $_, $deps[$_] ] } 0 .. $#deps;
            $open . join('', map { $_->[2] } sort { $a->[0] cmp $b->[0] || $a->[1] <=> $b->[1] } @keyed) . $close
        }me;
        my ($name) = $body =~ /^name = "([^"]+)"$/m;
        return undef unless defined $name;
        push @blocks, [ $name, scalar @blocks, $body ];
        push @seps, $sep;
    }
    my @sorted = sort { $a->[0] cmp $b->[0] || $a->[1] <=> $b->[1] } @blocks;
    @parts[@pkg] = map { $sorted[$_][2] . $seps[$_] } 0 .. $#sorted;
    return join '', @parts;
};

local $/ = "\0";
my @files = map { chomp; $_ } <STDIN>;
my (%count, %new, @leftovers);
my ($total, $lock_note) = (0, '');
for my $file (@files) {
    next if -l $file || !-f $file;
    open my $in, '<:raw', $file or die "rename.sh: cannot read $file: $!\n";
    my $text = do { local $/; <$in> };
    close $in;
    my $before = () = $text =~ /\Q$old\E/gi;
    next unless $before;
    my $lock_sorted_before;
    if ($file eq 'Cargo.lock') {
        my $check = $sort_lock->($text);
        $lock_sorted_before = defined $check && $check eq $text;
    }
    for my $rule (@rules) {
        my ($label, $re, $with, $only) = @$rule;
        next if $only && $file !~ $only;
        my $n = $text =~ s/$re/$with->($1)/ge;
        $count{$label} += $n if $n;
    }
    while ($text =~ /([^\n]*\Q$old\E[^\n]*)/gi) { push @leftovers, "$file: $1" }
    if ($file eq 'Cargo.lock') {
        if ($lock_sorted_before) {
            $text = $sort_lock->($text);
            $lock_note = "Cargo.lock: workspace packages renamed and re-sorted in Cargo's order";
        } else {
            $lock_note = "WARNING: Cargo.lock was not in the order this script expects, so it was renamed but not re-sorted: run `cargo update --workspace --offline` before `cargo build --locked`";
        }
    }
    $total += $before;
    $new{$file} = $text;
}
if (@leftovers) {
    print STDERR "rename.sh: error: spellings of the starter's name that no rule covers (nothing was written):\n";
    print STDERR "  $_\n" for @leftovers;
    exit 1;
}
for my $file (sort keys %new) {
    # Truncate and rewrite in place: keeps the file's mode (executable scripts stay executable).
    open my $out, '>:raw', $file or die "rename.sh: cannot write $file: $!\n";
    print {$out} $new{$file};
    close $out or die "rename.sh: cannot write $file: $!\n";
}
printf "Files changed:         %d\n", scalar keys %new;
printf "Occurrences replaced:  %d\n", $total;
for my $rule (@rules) {
    my $label = $rule->[0];
    printf "  %-22s %5d\n", "$label:", $count{$label} if $count{$label};
}
print "$lock_note\n" if $lock_note;
PERL

export RN_OLD="$OLD" RN_OLD_TITLE="$OLD_TITLE" RN_OLD_UPPER="$OLD_UPPER"
export RN_SNAKE="$CRATE" RN_KEBAB="$KEBAB" RN_UPPER="$UPPER" RN_DISPLAY="$DISPLAY"

echo "Renaming the starter to $CRATE (\"$DISPLAY\"; kebab form $KEBAB, env prefix ${UPPER}_)"
if ((${#FILES[@]})); then
  printf '%s\0' "${FILES[@]}" | perl -e "$RENAME_PL"
fi

# Paths: moved with `git mv`, so the renames are staged (review with `git diff HEAD`).
moved=0
for path in "${PATHS[@]}"; do
  [[ -e "$path" || -L "$path" ]] || continue
  new="$(printf '%s' "$path" | perl -pe '
    s/\Q$ENV{RN_OLD}\E-/$ENV{RN_KEBAB}-/g;
    s/\Q$ENV{RN_OLD_UPPER}\E/$ENV{RN_UPPER}/g;
    s/\Q$ENV{RN_OLD}\E/$ENV{RN_SNAKE}/gi;')"
  [[ "$new" != "$path" ]] || continue
  [[ ! -e "$new" ]] || die "cannot move $path: $new already exists"
  mkdir -p "$(dirname "$new")"
  git mv -- "$path" "$new"
  moved=$((moved + 1))
  # Remove the directories the move left empty.
  dir="$(dirname "$path")"
  while [[ "$dir" != "." ]] && rmdir -- "$dir" 2>/dev/null; do dir="$(dirname "$dir")"; done
done
echo "Paths renamed:         $moved"

# Everything covered? (git grep without -I also reports binary files, which are never edited.)
if left="$(git grep -n -i -F -e "$OLD" 2>/dev/null)" && [[ -n "$left" ]]; then
  printf '%s\n' "$left" >&2
  die "the starter's name is still in the files above (binary files are not edited): fix them by hand"
fi
if left="$(git ls-files | grep -i -F -e "$OLD")"; then
  printf '%s\n' "$left" >&2
  die "tracked paths still contain the starter's name"
fi

# Files git does not track keep the old names: say so (never edited: they are yours).
stale=()
for f in .env .env.local; do
  [[ -f "$f" ]] && grep -I -q -i -F -e "$OLD" "$f" && stale+=("$f")
done
while IFS= read -r -d '' f; do
  [[ -f "$f" ]] && grep -I -q -i -F -e "$OLD" "$f" && stale+=("$f")
done < <(git ls-files -z --others --exclude-standard)
if ((${#stale[@]})); then
  echo
  echo "Not tracked by git, so not renamed (update them yourself, e.g. DATABASE_URL and ${OLD_UPPER}_* variables):"
  printf '  %s\n' "${stale[@]}"
fi

cat <<EOF

Next steps:
  1. Review the rename as one diff:  git status && git diff HEAD
  2. Build (checks Cargo.lock too):  cargo build --locked
  3. Run the suite:                  just test
     (new database names: the dev database is now '$CRATE' and test databases are
     '${CRATE}_test_*' / '${CRATE}_tpl_*'; databases made under the old names are left as they are)
  4. Commit:                         git commit -am "Rename to $DISPLAY"
EOF
