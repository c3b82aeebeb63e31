#!/usr/bin/env bash
# Installs what hatui needs on a Debian 12 machine (run as root): apt packages for the local
# lab, and a virtualenv in .venv with hatui and its test tools at the versions pinned in
# constraints.txt. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(heartbeat resource-agents openssh-server nginx-light httperf iputils-arping iproute2 curl procps psmisc)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $EUID -ne 0 ]]; then
        echo "setup: need root to install: ${missing[*]}" >&2
        exit 2
    fi
    # Keep package postinst scripts from starting sshd/nginx/heartbeat in the root namespace.
    created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
    fi
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import hatui, textual, asyncssh, proxmoxer, pytest, hypothesis" 2>/dev/null \
   || [[ pyproject.toml -nt .venv/.hatui-installed ]] || [[ constraints.txt -nt .venv/.hatui-installed ]]; then
    # The exact versions in constraints.txt (scripts/update-constraints.sh rewrites it).
    echo "setup: pip install -c constraints.txt -e .[test,fast]"
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,fast]"
    touch .venv/.hatui-installed
fi
