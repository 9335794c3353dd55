#!/usr/bin/env bash
# Set up the environment and run the whole test suite (what CI runs). Installs Debian's headless
# Chromium for the dashboard test when it is missing and we are root.
source "$(dirname "$0")/env.sh"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null 2>&1 || echo "warning: could not install chromium" >&2
fi
exec pytest "$@"
