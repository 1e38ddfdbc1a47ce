#!/bin/sh
# Debian's Chromium for the browser test of the locust UI (tests/loadtests/test_specweb_browser.py)
# and tools/locust_ui_screenshot.py, which drive it over the DevTools pipe: no chromedriver needed.
set -eu
if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium)"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
