#!/usr/bin/env bash
# The Python tools the checks use (kubernetes-validate, schemathesis), in a virtualenv of the
# project's own, never in the system Python:
#
#   py="$(scripts/py-tools.sh "kubernetes-validate==1.37.0")"   # prints the venv's bin folder
#
# Installs each named requirement that is missing (pip from PyPI, the network a build already
# uses) into target/py-tools (gone with `cargo clean`), then prints the folder holding its
# `python` and the tools' commands. Why not `pip install` into whatever python3 is first on PATH:
# Debian and Ubuntu mark their system Python externally managed (PEP 668), so a plain
# `python3 -m pip install` fails there on a fresh machine, and a user-wide install would change
# what other projects see.
#
# Environment:
#   IRONCLAD_PY_TOOLS  the venv's folder (default: <repo>/target/py-tools)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IRONCLAD_PY_TOOLS:-$root/target/py-tools}"

if [ ! -x "$venv/bin/python" ]; then
    command -v python3 >/dev/null 2>&1 || {
        echo "py-tools: python3 is not installed (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2
        exit 1
    }
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" >&2 || {
        rm -rf "$venv"
        echo "py-tools: python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi

missing=()
for requirement in "$@"; do
    # `pip install` of a satisfied pin is slow (it asks the index): check locally first.
    "$venv/bin/python" - "$requirement" >/dev/null 2>&1 <<'PY' || missing+=("$requirement")
import sys
from importlib.metadata import version
name, _, pin = sys.argv[1].partition("==")
installed = version(name)
sys.exit(0 if not pin or installed == pin else 1)
PY
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "py-tools: installing ${missing[*]} into $venv (PyPI)" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" >&2
fi
echo "$venv/bin"
