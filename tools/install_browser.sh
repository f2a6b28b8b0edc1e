#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/browser), which Playwright (a pip package,
# installed with the dev extra) drives directly: Playwright's own browser download
# (`playwright install`) cannot reach its servers from CI, so it is never used.
# The colour-emoji font only makes the ✅ / ❌ of the checks and quizzes legible in screenshots.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y chromium fonts-noto-color-emoji
chromium --version
