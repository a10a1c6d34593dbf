#!/usr/bin/env bash
# Install Debian's fonts-dejavu-core when DejaVu Sans is missing: the equipment service's certification
# PDFs embed it, because it has Greek (equipment.certpdf; EQUIPMENT_FONT_DIR points elsewhere if needed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

FONT_DIR="${EQUIPMENT_FONT_DIR:-/usr/share/fonts/truetype/dejavu}"
if [[ -f "$FONT_DIR/DejaVuSans.ttf" && -f "$FONT_DIR/DejaVuSans-Bold.ttf" && -f "$FONT_DIR/DejaVuSansMono.ttf" ]]; then
    exit 0
fi
command -v apt-get >/dev/null || die "DejaVu fonts are missing at $FONT_DIR and there is no apt-get: install them, or set EQUIPMENT_FONT_DIR"
say "installing fonts-dejavu-core from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null
[[ -f "$FONT_DIR/DejaVuSans.ttf" ]] || die "fonts-dejavu-core installed but $FONT_DIR/DejaVuSans.ttf is missing"
