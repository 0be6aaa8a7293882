#!/usr/bin/env bash
# Host tools the platform, tests and benchmarks call: iptables (the controller's task firewall,
# controller/netfilter.py; its tests add addresses and namespaces with iproute2's ip) and wrk (HTTP
# load for bench/). Installs Debian's packages only when a tool is missing and we are root with
# apt-get; otherwise says what is missing. Idempotent and silent when everything is there.
set -euo pipefail

log() { printf '[ensure-tools] %s\n' "$*" >&2; }

missing=()
# iptables-save lives in /usr/sbin, which a non-root PATH may lack.
command -v iptables-save >/dev/null 2>&1 || [ -x /usr/sbin/iptables-save ] || missing+=(iptables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "missing: ${missing[*]} (the task firewall, its tests and bench/); install them and re-run."
  exit 1
fi
log "installing Debian's ${missing[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -q "${missing[@]}" >/dev/null
