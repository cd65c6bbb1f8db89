#!/usr/bin/env bash
# Idempotent setup for the benchmarks: the local nginx that serves the HTTP corpus.
# Runs apt-get update only when nginx is missing, so repeat runs cost nothing.
set -euo pipefail

have_nginx() { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; }

if have_nginx; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: nginx is missing and installing it needs root" >&2
    exit 1
fi

# The package's postinst would start a system nginx on 0.0.0.0:80; the benchmarks
# only ever run a private instance on 127.0.0.1, so forbid service starts meanwhile.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# nginx-light is the smallest build; releases without it ship plain `nginx`.
if apt-cache show nginx-light >/dev/null 2>&1; then
    pkg=nginx-light
else
    pkg=nginx
fi
apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
have_nginx
