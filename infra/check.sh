#!/usr/bin/env bash
# Static security checks of every Terraform root and module under infra/, offline.
# checkov pins libraries that clash with apache-beam, so it lives in its own venv
# (.venv-checkov at the repository root, ignored by git through its own .gitignore).
#
# Usage: infra/check.sh [extra checkov arguments, e.g. -o json]
# Exit status: 0 when checkov reports no failed check, non-zero otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/checkov" ]; then
  "$PYTHON" -m venv "$VENV"
  printf '*\n' > "$VENV/.gitignore"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov>=3.2,<4" >&2
fi

cd "$ROOT"
BC_SKIP_MAPPING=TRUE exec "$VENV/bin/checkov" -d infra --framework terraform --quiet --compact \
  --skip-download --skip-path '\.terraform' "$@"
