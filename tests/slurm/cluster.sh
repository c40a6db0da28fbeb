#!/usr/bin/env bash
# A Slurm cluster on loopback for neuroq's tests (issue 11): its own munged
# (own key and socket), one slurmctld and two slurmd nodes (one when this
# Slurm build cannot run two), each node with two fake GPUs (character
# devices made with mknod, gres type "fake"). Everything lives in DIR; the
# daemons run in the foreground, started in the background here and stopped
# by pid. Needs root (munged, slurmd) and Debian 12's slurmctld, slurmd,
# slurm-client and munge packages. /work/shared/specs/slurm.md (verified
# facts) explains the settings.
#   tests/slurm/cluster.sh start DIR         # prints KEY=VALUE lines (SLURM_CONF=...)
#   tests/slurm/cluster.sh stop DIR          # cancels every job, stops the daemons
#   tests/slurm/cluster.sh node-stop DIR N   # node N (nq1, nq2) dies: slurmd and its jobs' processes killed
#   tests/slurm/cluster.sh node-start DIR N  # its slurmd again (ReturnToService=2: back to idle)
#   tests/slurm/cluster.sh env DIR           # the KEY=VALUE lines again
# Environment: NQ_SLURM_NODES=1|2 (default 2, or 1 when two cannot start),
# NQ_SLURM_PORT (slurmctld's port; default a free one in 20000-29999, the
# nodes take the next ones), NQ_SLURM_UP_S (default 60: how long start waits
# for the nodes to be idle).
set -euo pipefail

PART=nqtest
GRES_TYPE=fake

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '10,14p' "$0" | sed 's/^# *//' >&2
	exit 2
}

# the pid in FILE when that process is alive, else nothing
live_pid() {
	local p
	[ -f "$1" ] || return 1
	p=$(cat "$1")
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

# stop the process whose pid is in FILE: SIGTERM, then SIGKILL after 10 s
stop_pid() {
	local p i
	p=$(live_pid "$1") || { rm -f "$1"; return 0; }
	kill "$p" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$p" 2>/dev/null || break
		[ "$i" -eq 100 ] && kill -9 "$p" 2>/dev/null
		sleep 0.1
	done
	rm -f "$1"
}

port_free() {
	! ss -Hltn "sport = :$1" | grep -q .
}

pick_port() {
	local p i
	if [ -n "${NQ_SLURM_PORT:-}" ]; then
		echo "$NQ_SLURM_PORT"
		return
	fi
	for i in $(seq 50); do
		p=$((20000 + (RANDOM % 1000) * 10))
		if port_free "$p" && port_free $((p + 1)) && port_free $((p + 2)); then
			echo "$p"
			return
		fi
		: "$i"
	done
	die "no free port found in 20000-29999"
}

env_lines() {
	local d=$1
	echo "SLURM_CONF=$d/slurm.conf"
	echo "NQ_SLURM_PARTITION=$PART"
	echo "NQ_SLURM_NODES=$(cat "$d/nodes")"
	echo "NQ_SLURM_GRES=gpu:$GRES_TYPE:2"
	echo "NQ_SLURM_MUNGE_SOCKET=$d/munge/munge.sock"
}

write_conf() {
	local d=$1 port=$2 n=$3 host i mem
	host=$(hostname -s)
	# per node: a quarter of this machine's memory, at most 8 GiB (slurmd
	# drains a node that declares more than it has)
	mem=$(awk '/^MemTotal:/ { m = int($2 / 1024 / 4); print (m > 8192 ? 8192 : m) }' /proc/meminfo)
	cat >"$d/slurm.conf" <<EOF
# written by tests/slurm/cluster.sh: a loopback test cluster
ClusterName=neuroqtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge/munge.sock
CryptoType=crypto/munge
StateSaveLocation=$d/ctld
SlurmdSpoolDir=$d/slurmd-%n
SlurmctldPidFile=$d/run/slurmctld.pid
SlurmdPidFile=$d/run/slurmd-%n.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$d/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
ReturnToService=2
GresTypes=gpu
# short timeouts: a test waits for them (a dead node is DOWN within ~15 s,
# a killed job's processes get SIGKILL 5 s after SIGTERM, a finished job is
# forgotten by slurmctld after 10 s: the daemon must not rely on squeue
# remembering it)
SlurmdTimeout=10
KillWait=5
MinJobAge=10
InactiveLimit=0
EOF
	: >"$d/nodes"
	for i in $(seq "$n"); do
		echo "NodeName=nq$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$((port + i)) CPUs=2 RealMemory=$mem Gres=gpu:$GRES_TYPE:2 State=UNKNOWN" >>"$d/slurm.conf"
		printf '%s' "$([ "$i" -gt 1 ] && echo ,)nq$i" >>"$d/nodes"
		mkdir -p "$d/dev/nq$i" "$d/slurmd-nq$i"
		[ -c "$d/dev/nq$i/gpu0" ] || mknod "$d/dev/nq$i/gpu0" c 1 3
		[ -c "$d/dev/nq$i/gpu1" ] || mknod "$d/dev/nq$i/gpu1" c 1 3
	done
	echo "PartitionName=$PART Nodes=$(cat "$d/nodes") Default=YES MaxTime=INFINITE State=UP" >>"$d/slurm.conf"
	# one gres.conf for every node (NodeName= picks the lines)
	: >"$d/gres.conf"
	for i in $(seq "$n"); do
		echo "NodeName=nq$i Name=gpu Type=$GRES_TYPE File=$d/dev/nq$i/gpu[0-1]" >>"$d/gres.conf"
	done
}

start_munge() {
	local d=$1 i
	[ -n "$(live_pid "$d/run/munged.pid" || true)" ] && return 0
	mkdir -p "$d/munge"
	chmod 0755 "$d/munge"
	if [ ! -s "$d/munge/munge.key" ]; then
		if command -v mungekey >/dev/null; then
			mungekey --create --keyfile="$d/munge/munge.key" --force >/dev/null
		else
			dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
		fi
	fi
	chmod 0600 "$d/munge/munge.key"
	# -F: foreground, so the pid is ours; --force: /tmp above DIR is
	# world-writable (sticky), which munged would otherwise refuse
	munged -F --force --socket="$d/munge/munge.sock" --key-file="$d/munge/munge.key" \
		--pid-file="$d/munge/munged.pid" --log-file="$d/log/munged.log" \
		--seed-file="$d/munge/munged.seed" >>"$d/log/munged.out" 2>&1 &
	echo $! >"$d/run/munged.pid"
	for i in $(seq 100); do
		[ -S "$d/munge/munge.sock" ] && return 0
		live_pid "$d/run/munged.pid" >/dev/null || break
		sleep 0.1
		: "$i"
	done
	tail -5 "$d/log/munged.log" "$d/log/munged.out" >&2 2>/dev/null || true
	die "munged did not start"
}

start_slurmd() {
	local d=$1 node=$2
	[ -n "$(live_pid "$d/run/slurmd-$node.ours" || true)" ] && return 0
	SLURM_CONF=$d/slurm.conf slurmd -D -N "$node" -f "$d/slurm.conf" \
		>>"$d/log/slurmd-$node.out" 2>&1 &
	echo $! >"$d/run/slurmd-$node.ours"
}

# every node idle (or mixed/allocated: up and answering) within $1 s
wait_nodes_up() {
	local d=$1 limit=$2 t0 bad
	t0=$(date +%s)
	while :; do
		bad=$(SLURM_CONF=$d/slurm.conf sinfo -h -N -p "$PART" -o '%N %t' 2>/dev/null |
			awk '$2 !~ /^(idle|mix|alloc)$/' | sort -u || true)
		if [ -z "$bad" ] && SLURM_CONF=$d/slurm.conf sinfo -h -N -o '%N' >/dev/null 2>&1 &&
			[ "$(SLURM_CONF=$d/slurm.conf sinfo -h -N -p "$PART" -o '%N' | sort -u | wc -l)" -gt 0 ]; then
			return 0
		fi
		if [ $(($(date +%s) - t0)) -ge "$limit" ]; then
			echo "cluster.sh: nodes not up after $limit s: ${bad:-sinfo failed}" >&2
			return 1
		fi
		sleep 0.5
	done
}

cmd_start() {
	local d=$1 port n up nodes i
	for b in munged slurmctld slurmd sinfo; do
		command -v "$b" >/dev/null || die "$b missing (apt-get install slurmctld slurmd slurm-client munge)"
	done
	[ "$(id -u)" -eq 0 ] || die "needs root (munged, slurmd)"
	mkdir -p "$d"
	d=$(cd "$d" && pwd)
	chmod 0755 "$d"
	mkdir -p "$d/run" "$d/log" "$d/ctld"
	up=${NQ_SLURM_UP_S:-60}
	if [ -n "$(live_pid "$d/run/slurmctld.ours" || true)" ]; then
		wait_nodes_up "$d" "$up"
		env_lines "$d"
		return
	fi
	port=$(pick_port)
	n=${NQ_SLURM_NODES:-2}
	write_conf "$d" "$port" "$n"
	start_munge "$d"
	# -i: ignore state from an earlier run of this DIR
	SLURM_CONF=$d/slurm.conf slurmctld -D -i -f "$d/slurm.conf" >>"$d/log/slurmctld.out" 2>&1 &
	echo $! >"$d/run/slurmctld.ours"
	IFS=, read -r -a nodes <"$d/nodes" || true
	for i in "${nodes[@]}"; do
		start_slurmd "$d" "$i"
	done
	if ! wait_nodes_up "$d" "$up"; then
		if [ "$n" -gt 1 ] && [ -z "${NQ_SLURM_NODES:-}" ]; then
			# this build may not run two slurmd on one host: try one
			echo "cluster.sh: two nodes did not come up; trying one" >&2
			cmd_stop "$d" >/dev/null
			NQ_SLURM_NODES=1 cmd_start "$d"
			return
		fi
		tail -20 "$d/log/slurmctld.log" "$d"/log/slurmd-*.log >&2 2>/dev/null || true
		die "cluster did not come up (logs in $d/log)"
	fi
	env_lines "$d"
}

# pids of processes whose environment says they belong to Slurm job $1
job_pids() {
	local f
	for f in /proc/[0-9]*/environ; do
		if { tr '\0' '\n' <"$f"; } 2>/dev/null | grep -qx "SLURM_JOB_ID=$1"; then
			f=${f#/proc/}
			echo "${f%/environ}"
		fi
	done
}

# Node $2 dies: its slurmd, the slurmstepd of its jobs and every process of
# those jobs are killed (SIGKILL), as when the machine loses power.
cmd_node_stop() {
	local d=$1 node=$2 j p
	stop_pid "$d/run/slurmd-$node.ours"
	for j in $(SLURM_CONF=$d/slurm.conf squeue -h -w "$node" -o '%A' 2>/dev/null || true); do
		for p in $(pgrep -f "^slurmstepd: \[$j\." || true) $(job_pids "$j"); do
			kill -9 "$p" 2>/dev/null || true
		done
	done
}

cmd_stop() {
	local d=$1 f
	[ -d "$d" ] || return 0
	d=$(cd "$d" && pwd)
	if [ -n "$(live_pid "$d/run/slurmctld.ours" || true)" ]; then
		# no job outlives the cluster
		SLURM_CONF=$d/slurm.conf timeout 10 scancel -p "$PART" 2>/dev/null || true
		for f in $(seq 50); do
			[ -z "$(SLURM_CONF=$d/slurm.conf timeout 5 squeue -h -p "$PART" -o '%A' 2>/dev/null || true)" ] && break
			sleep 0.2
		done
	fi
	for f in "$d"/run/slurmd-*.ours; do
		[ -e "$f" ] || continue
		f=${f##*/slurmd-}
		cmd_node_stop "$d" "${f%.ours}"
	done
	stop_pid "$d/run/slurmctld.ours"
	stop_pid "$d/run/munged.pid"
}

[ $# -ge 2 ] || usage
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
env) env_lines "$(cd "$2" && pwd)" ;;
node-stop)
	[ $# -eq 3 ] || usage
	cmd_node_stop "$(cd "$2" && pwd)" "$3"
	;;
node-start)
	[ $# -eq 3 ] || usage
	start_slurmd "$(cd "$2" && pwd)" "$3"
	;;
*) usage ;;
esac
