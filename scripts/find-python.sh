#!/usr/bin/env bash
# Print the path of a Python >= 3.12 (Django 6 needs it), looking on PATH and under pyenv.
# Exit 1 with a message saying what to install when there is none.
set -u
is_ok() {
  "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
candidates+=(python3 python3.14 python3.13 python3.12)
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root 2>/dev/null)
  for dir in $(ls -d "$root"/versions/3.1[2-9]* 2>/dev/null | sort -rV); do
    candidates+=("$dir/bin/python3")
  done
fi
for dir in $(ls -d "$HOME"/.pyenv/versions/3.1[2-9]* 2>/dev/null | sort -rV); do
  candidates+=("$dir/bin/python3")
done
for candidate in "${candidates[@]}"; do
  path=$(command -v "$candidate" 2>/dev/null) || continue
  if is_ok "$path"; then
    echo "$path"
    exit 0
  fi
done
echo "No Python 3.12 or newer found (Django 6 needs it). Install one (e.g. 'pyenv install 3.13'" >&2
echo "or your system's python3.12 package), or point PYTHON=/path/to/python3 at it." >&2
exit 1
