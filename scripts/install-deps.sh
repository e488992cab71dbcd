#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab use. Needs root; safe to run again.
#   tshark      independent decoder: the tests check that every packet we emit decodes cleanly
#   iproute2    the namespace lab (src/lab): ip netns, veth, bridge, addresses, routes
#   iptables    the lab's NATs (iptables-restore; nf_tables backend)
#   conntrack   the lab reads NAT mappings and their timeouts (conntrack -L)
#   procps      sysctl inside lab namespaces (forwarding, DAD, accept_ra, conntrack UDP timeout)
#   iputils-ping  the lab's reachability checks
#   socat       TCP exchanges in the ISATAP and 6to4 lab tests; stands in for systemd's notification socket in the
#               sd_notify tests (test/io/sdnotify, test/lab/observe)
#   miredo, miredo-server  the reference implementation the interop tests run against (test/lab/interop-miredo),
#               only ever started inside lab namespaces. Installed with a policy-rc.d that forbids service starts,
#               so that the package scripts never start a Miredo daemon in the root namespace (it would try to
#               reach a public Teredo server); checked with pgrep afterwards.
#   radvd       router advertisements on the 6to4 router's LAN (transit6 6to4 router) and in the ISATAP/6to4 lab
#               tests; installed under the same policy-rc.d, so that no radvd starts in the root namespace
#   6tunnel     the TCP proxy the PortProxy benchmark (bench/portproxy.ts) runs beside transit6 portproxy and socat;
#               no service of its own, only ever started by the benchmark on loopback
#   iperf3      the benchmarks (npm run bench, npm run bench:portproxy): TCP and 64-byte UDP, run as `iperf3 -s -1`
#   tcpdump     the Teredo daemons' lab test captures what crosses the lab's "Internet" (-Q in) and reads it back
#   libxml2-utils  xmllint, an independent XML parser for the SVG ladder diagrams (test/trace)
set -euo pipefail
packages=(tshark iproute2 iptables conntrack procps iputils-ping miredo miredo-server radvd socat 6tunnel iperf3 tcpdump libxml2-utils)
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

# miredo* processes whose network namespace is the root one (ours: this shell runs there). Lab daemons run in t6-*
# namespaces and are not counted.
root_miredo_pids() {
  local self pid
  self=$(readlink /proc/self/ns/net)
  for pid in $(pgrep '^miredo' || true); do
    [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$self" ] && echo "$pid"
  done
  return 0
}

policy=/usr/sbin/policy-rc.d
made_policy=0
remove_policy() {
  # Only a policy-rc.d this script created is removed (a container's own one stays).
  if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
}
installing_miredo=0
before_pids=""
for p in "${missing[@]}"; do
  case "$p" in
    miredo | miredo-server | radvd)
      if [ ! -e "$policy" ]; then
        trap remove_policy EXIT
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
      elif ! grep -qx 'exit 101' "$policy"; then
        echo "install-deps: $policy exists and may allow service starts; refusing to install ${p}" >&2
        exit 1
      fi
      installing_miredo=1
      before_pids=$(root_miredo_pids)
      break
      ;;
  esac
done

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
remove_policy
made_policy=0

started=()
if [ "$installing_miredo" = 1 ]; then
  for pid in $(root_miredo_pids); do
    case " ${before_pids//$'\n'/ } " in *" $pid "*) continue ;; esac
    started+=("$pid")
  done
fi
if [ ${#started[@]} -gt 0 ]; then
  echo "install-deps: ERROR: the package scripts started miredo in the root namespace (pid ${started[*]}); stop it with: kill ${started[*]}" >&2
  exit 1
fi
echo "install-deps: installed ${missing[*]}"
