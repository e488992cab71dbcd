#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab use. Needs root; safe to run again.
#   tshark      independent decoder: the tests check that every packet we emit decodes cleanly
#   iproute2    the namespace lab (src/lab): ip netns, veth, bridge, addresses, routes
#   iptables    the lab's NATs (iptables-restore; nf_tables backend)
#   conntrack   the lab reads NAT mappings and their timeouts (conntrack -L)
#   procps      sysctl inside lab namespaces (forwarding, DAD, accept_ra, conntrack UDP timeout)
#   iputils-ping  the lab's reachability checks
set -euo pipefail
packages=(tshark iproute2 iptables conntrack procps iputils-ping)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all present (${packages[*]})"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: installed ${missing[*]}"
