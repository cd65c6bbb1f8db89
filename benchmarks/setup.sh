#!/usr/bin/env bash
# Idempotent setup for the benchmarks: the local nginx that serves the HTTP corpus (with the
# echo module, whose echo_sleep delays answers for the latency runs), the peer tools compared
# against (curl, wget, wget2, aria2c, parfive), and what the harness itself uses (iproute2
# for the old latency namespace, GNU time for CPU and peak RSS, strace for the system-call
# counts, matplotlib for the plot).
# Installs only what is missing and runs apt-get update at most once, so repeat runs cost
# nothing.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

# command -> Debian package that provides it
declare -A apt_for=(
    [curl]=curl
    [wget]=wget
    [wget2]=wget2
    [strace]=strace
    [findmnt]=util-linux
    [aria2c]=aria2
    [ip]=iproute2
    [tc]=iproute2
)
missing=()
have nginx || missing+=(nginx)
for cmd in "${!apt_for[@]}"; do
    have "$cmd" || missing+=("${apt_for[$cmd]}")
done
[ -x /usr/bin/time ] || missing+=(time)
echo_module=/usr/lib/nginx/modules/ngx_http_echo_module.so
[ -f "$echo_module" ] || missing+=(libnginx-mod-http-echo)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: missing ${missing[*]} and installing needs root" >&2
        exit 1
    fi
    # nginx's postinst would start a system nginx on 0.0.0.0:80; the benchmarks only
    # ever run a private instance, so forbid service starts meanwhile.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    pkgs=()
    for pkg in "${missing[@]}"; do
        if [ "$pkg" = nginx ] && apt-cache show nginx-light >/dev/null 2>&1; then
            pkg=nginx-light # the smallest build; releases without it ship plain `nginx`
        fi
        pkgs+=("$pkg")
    done
    # De-duplicate (ip and tc both come from iproute2).
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

py=${PYTHON:-python3}
pip_missing=()
"$py" -c 'import parfive' 2>/dev/null || pip_missing+=(parfive)
"$py" -c 'import matplotlib' 2>/dev/null || pip_missing+=(matplotlib)
if [ "${#pip_missing[@]}" -gt 0 ]; then
    "$py" -m pip install -q "${pip_missing[@]}"
fi

for cmd in nginx "${!apt_for[@]}"; do
    have "$cmd" || { echo "setup.sh: $cmd still missing" >&2; exit 1; }
done
[ -f "$echo_module" ] || { echo "setup.sh: $echo_module still missing" >&2; exit 1; }
