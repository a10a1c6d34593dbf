#!/usr/bin/env bash
# Install Debian's chromium when it is missing: the e2e test of the public HTML report drives it headless
# through Playwright's Python package (tests/e2e/test_compliance_report_browser.py). Playwright's own browser
# download (`playwright install`) is never used: the system package is the one browser we test against.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
command -v apt-get >/dev/null || die "chromium is missing at $CHROMIUM and there is no apt-get: install it, or set CHROMIUM_PATH"
say "installing chromium from Debian's packages (headless use only: no recommends)"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
[[ -x "$CHROMIUM" ]] || die "chromium installed but $CHROMIUM is missing"
