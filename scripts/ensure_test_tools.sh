#!/usr/bin/env bash
# System tools the tests use, from Debian's packages, installed when missing:
#   chromium       - browser tests drive it with Playwright (/usr/bin/chromium)
#   poppler-utils  - pdftoppm/pdftotext render and read the PDF reports
#   postgresql     - the store's tests also run against a private PostgreSQL server
#                    (tests/conftest.py starts it on 127.0.0.1 in a temporary folder)
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} for the tests..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "warning: ${missing[*]} missing and cannot be installed here (needs root and apt-get); without poppler-utils the report tests fail, without chromium or postgresql their tests are skipped" >&2
fi
