#!/usr/bin/env bash
# make demo: flux-pam on a simulated Flux node. Starts the project's test broker with running jobs
# of one user, then shows what an admin would see. No root, no real Flux.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/flux-pam
BUN=node_modules/.bin/bun

# Users every Debian system has: daemon plays the job owner, nobody someone without a job, bin
# someone whose job runs on another node.
me=daemon; my_uid=$(id -u daemon)
other=nobody
elsewhere=bin; elsewhere_uid=$(id -u bin)
tmp=$(mktemp -d)
broker_pid=
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# The simulated node: rank 0 of a system instance owned by uid 64999 ("flux"), constraints on,
# and a running job of $me holding core 0 and gpu 0 of this node; a second job (this machine's
# last core: the prolog refuses CPUs a node does not have) is starting: its prolog is shown as a
# dry run.
last_core=$(( $(nproc --all) - 1 ))
cat > "$tmp/node.json" <<JSON
{
  "rank": 0,
  "hosts": ["fluke7", "fluke8", "fluke12", "fluke13"],
  "owner": 64999,
  "config": {
    "access": { "allow-guest-user": true },
    "pam": { "manage-user-slice": true, "kill-user-slice": true, "kill-slice-grace-time": "30s" },
    "exec": { "service": "sdexec", "sdexec-constrain-resources": true }
  },
  "jobs": [
    { "id": "1227286904832", "userid": $my_uid, "ranks": "0-1", "cores": "0", "gpus": "0" },
    { "id": "2454573809664", "userid": $my_uid, "ranks": "0", "cores": "$last_core" },
    { "id": "3681860714496", "userid": $elsewhere_uid, "ranks": "2-3", "cores": "0-7" }
  ],
  "mapper": "auto"
}
JSON
"$BUN" test/broker/main.ts "$tmp/flux.sock" "$tmp/node.json" > "$tmp/broker.out" &
broker_pid=$!
for _ in $(seq 100); do grep -q ready "$tmp/broker.out" 2>/dev/null && break; sleep 0.05; done
uri="local://$tmp/flux.sock"

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@" && rc=0 || rc=$?; printf '(exit %s)\n' "$rc"; }

section "An SSH login by $me, who has a job here (what pam_flux.so asks)"
show env PAM_USER="$me" PAM_SERVICE=sshd PAM_TYPE=account "$BIN" account "uri=$uri"

section "An SSH login by $other, who has none"
show env PAM_USER="$other" PAM_SERVICE=sshd PAM_TYPE=account "$BIN" account "uri=$uri"

section "An SSH login by $elsewhere, whose job runs on other nodes"
show env PAM_USER="$elsewhere" PAM_SERVICE=sshd PAM_TYPE=account "$BIN" account "uri=$uri"

section "The admin asks why (no prolog ran on this simulated node: the account step admits $me, the session would refuse)"
show "$BIN" check-user "$me" --uri "$uri"
show "$BIN" check-user "$other" --uri "$uri"

section "What the prolog of $me's next job would set on user-$my_uid.slice (dry run)"
show env FLUX_URI="$uri" FLUX_JOB_USERID="$my_uid" FLUX_JOB_ID=2454573809664 "$BIN" prolog --dry-run

section "The node's view of $me: the slice against the jobs, the logins, what drifted (no prolog ran on this simulated node)"
show "$BIN" status "$me" --uri "$uri"
