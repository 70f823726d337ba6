#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, broker+controller in one JVM, loopback only) for
# eddy's tests and CI. Jars come from Maven Central through pom.xml beside this script.
#
#   kafka.sh fetch          copy the broker's jars into scripts/kafka/lib (skipped when complete)
#   kafka.sh start [DIR]    configure, format (once) and start the broker; wait until ready
#   kafka.sh stop  [DIR]    SIGTERM (controlled shutdown), SIGKILL after a deadline
#   kafka.sh status [DIR]   is it running and ready? (exit 0 yes, 3 no)
#   kafka.sh clean [DIR]    stop it and delete DIR (data, logs, config)
#
# DIR defaults to $EDDY_KAFKA_DIR, else scripts/kafka/_run/broker (git-ignored; the
# underscore keeps `go test ./...` from walking the files the broker deletes). It holds
# server.properties, log4j2.xml, data/ (the log), logs/ (server.log, kafka.out), kafka.pid.
#
# Environment (all optional):
#   EDDY_KAFKA_PORT             client port (default 9092)
#   EDDY_KAFKA_CONTROLLER_PORT  controller port (default 9093)
#   EDDY_KAFKA_DIR              default DIR
#   EDDY_KAFKA_HEAP             JVM heap flags (default "-Xms512m -Xmx1g")
#   EDDY_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 120)
#   EDDY_KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 60)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
STAMP="$LIB/.complete"
HOST=127.0.0.1
PORT="${EDDY_KAFKA_PORT:-9092}"
CPORT="${EDDY_KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${EDDY_KAFKA_HEAP:--Xms512m -Xmx1g}"
START_TIMEOUT="${EDDY_KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT="${EDDY_KAFKA_STOP_TIMEOUT:-60}"
# Fixed KRaft cluster id (22 chars, base64url of 16 bytes), as `StorageTool random-uuid` prints.
CLUSTER_ID="ZWRkeS10ZXN0LWNsdXN0ZQ"
READY_LINE="Kafka Server started"

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

usage() {
	sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# --- helpers ----------------------------------------------------------------

need() {
	command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH: $2"
}

# run_dir [DIR] -> absolute path (created).
run_dir() {
	local d="${1:-${EDDY_KAFKA_DIR:-$HERE/_run/broker}}"
	mkdir -p "$d"
	(cd "$d" && pwd)
}

now() { date +%s; }

# port_open PORT: true when something accepts TCP connections on $HOST:PORT.
port_open() {
	if command -v timeout >/dev/null 2>&1; then
		timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
	else
		(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
	fi
}

# who_listens PORT: describe the listener(s) on PORT, best effort.
who_listens() {
	local out=""
	if command -v ss >/dev/null 2>&1; then
		out="$(ss -Hltnp "sport = :$1" 2>/dev/null || true)"
	fi
	if [ -z "$out" ] && command -v lsof >/dev/null 2>&1; then
		out="$(lsof -nP -iTCP:"$1" -sTCP:LISTEN 2>/dev/null || true)"
	fi
	echo "${out:-(could not tell which process: neither ss nor lsof gave details)}"
}

# broker_pid DIR: prints the PID recorded in DIR/kafka.pid if that process is alive and
# is the broker started with DIR/server.properties; else prints nothing.
broker_pid() {
	local pidfile="$1/kafka.pid" pid cmd
	[ -s "$pidfile" ] || return 0
	pid="$(tr -dc '0-9' <"$pidfile")"
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
	cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
	case "$cmd" in
	*kafka.Kafka*"$1/server.properties"*) echo "$pid" ;;
	esac
}

# use_dir_port DIR: a broker already configured in DIR keeps the client port written in its
# server.properties; status, stop and a repeated start look there, not at the environment.
use_dir_port() {
	local p
	[ -f "$1/server.properties" ] || return 0
	p="$(sed -n 's|^listeners=PLAINTEXT://[^,]*:\([0-9]*\),.*|\1|p' "$1/server.properties")"
	if [ -n "$p" ] && [ "$p" != "$PORT" ]; then
		PORT="$p"
	fi
}

log_ready() {
	[ -f "$1/logs/server.log" ] && grep -q "$READY_LINE" "$1/logs/server.log"
}

show_logs() {
	local dir="$1"
	for f in "$dir/logs/kafka.out" "$dir/logs/server.log"; do
		[ -s "$f" ] || continue
		echo "----- last lines of $f (config dump left out) -----" >&2
		grep -v "$(printf '^\t')" "$f" | tail -n 40 >&2 || true
	done
	echo "----- end of logs -----" >&2
}

lib_complete() {
	[ -f "$STAMP" ] || return 1
	local want have jar
	want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
	have="$(head -n1 "$STAMP")"
	[ "$want" = "$have" ] || return 1
	while IFS= read -r jar; do
		[ -f "$LIB/$jar" ] || return 1
	done < <(tail -n +2 "$STAMP")
	return 0
}

# --- fetch ------------------------------------------------------------------

# run_mvn ARGS...: mvn, with the colour escapes Maven 3.8 prints even with -B removed.
run_mvn() {
	mvn "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
}

cmd_fetch() {
	if lib_complete; then
		say "jars already in $LIB ($(($(wc -l <"$STAMP") - 1)) jars); nothing to fetch"
		return 0
	fi
	need java "install a JDK >= 17 (Debian: apt-get install openjdk-17-jdk-headless)"
	need mvn "install Maven (Debian: apt-get install maven)"
	say "fetching Kafka's jars from Maven Central into $LIB (Maven cache: ~/.m2) ..."
	local t0 mvnargs
	t0="$(now)"
	rm -rf "$LIB"
	mvnargs=(-q -B -f "$HERE/pom.xml"
		-Dstyle.color=never -Dmaven.wagon.http.retryHandler.count=3
		dependency:copy-dependencies)
	if ! run_mvn "${mvnargs[@]}"; then
		say "mvn failed; retrying once in 5 s ..."
		sleep 5
		run_mvn "${mvnargs[@]}" || die "mvn dependency:copy-dependencies failed (see above)"
	fi
	compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar in $LIB after mvn"
	compgen -G "$LIB/log4j-slf4j-impl-*.jar" >/dev/null || die "no log4j-slf4j-impl jar in $LIB after mvn"
	{
		sha256sum "$HERE/pom.xml" | cut -d' ' -f1
		(cd "$LIB" && ls -1 -- *.jar)
	} >"$STAMP.tmp"
	mv "$STAMP.tmp" "$STAMP"
	say "fetched $(($(wc -l <"$STAMP") - 1)) jars in $(($(now) - t0)) s"
}

# --- start ------------------------------------------------------------------

write_config() {
	local dir="$1"
	cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka/kafka.sh: single-node KRaft broker+controller for tests, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data

# One node: every internal topic has replication factor 1 and min ISR 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Tests: no wait before the first rebalance of a new group.
group.initial.rebalance.delay.ms=0
# The crash tests' instances use a 1.5 s session timeout, so a killed instance's
# partitions move quickly (Kafka's minimum is 6 s by default).
group.min.session.timeout.ms=1000

# Fewer internal partitions than the defaults (50): created faster on a 2-core machine.
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10

# Transactions: the defaults are kept on purpose (transaction.max.timeout.ms=900000,
# transactional.id.expiration.ms=7 days,
# transaction.abort.timed.out.transaction.cleanup.interval.ms=10 s).

# Small machine.
num.network.threads=2
num.io.threads=4
num.partitions=1
log.retention.hours=24
EOF

	cat >"$dir/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/kafka/kafka.sh. -->
<Configuration status="warn">
  <Appenders>
    <File name="server" fileName="$dir/logs/server.log" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="server"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.authorizer.logger" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

# check_formatted DIR: the KRaft metadata in DIR/data records the controller's endpoint, so
# a formatted DIR keeps its ports.
check_formatted() {
	local dir="$1" ports="$HOST:$PORT,$HOST:$CPORT"
	if [ -f "$dir/data/meta.properties" ] && [ -f "$dir/formatted" ] &&
		[ "$(cat "$dir/formatted")" != "$ports" ]; then
		die "storage in $dir/data was formatted for $(cat "$dir/formatted"), not $ports; run '$0 clean $dir' first (or set EDDY_KAFKA_PORT / EDDY_KAFKA_CONTROLLER_PORT to match)"
	fi
}

format_storage() {
	local dir="$1" ports="$HOST:$PORT,$HOST:$CPORT"
	[ -f "$dir/data/meta.properties" ] && return 0
	say "formatting storage in $dir/data (cluster id $CLUSTER_ID, --standalone)"
	rm -rf "$dir/data"
	java -Dlog4j2.configurationFile="$dir/log4j2.xml" -Dkafka.logs.dir="$dir/logs" \
		-cp "$LIB/*" kafka.tools.StorageTool format --standalone \
		-t "$CLUSTER_ID" -c "$dir/server.properties" >"$dir/logs/format.out" 2>&1 || {
		cat "$dir/logs/format.out" >&2
		die "StorageTool format failed"
	}
	echo "$ports" >"$dir/formatted"
}

# wait_ready DIR PID T0 [KEEP]: until the port accepts and the log says started. On timeout
# the broker is stopped, unless KEEP is set (a broker this call did not start).
wait_ready() {
	local dir="$1" pid="$2" t0="$3" keep="${4:-}" deadline
	deadline=$((t0 + START_TIMEOUT))
	while :; do
		if [ -z "$(broker_pid "$dir")" ] || ! kill -0 "$pid" 2>/dev/null; then
			show_logs "$dir"
			rm -f "$dir/kafka.pid"
			die "broker (pid $pid) exited during startup; logs in $dir/logs"
		fi
		if port_open "$PORT" && log_ready "$dir"; then
			say "ready: $HOST:$PORT (pid $pid, $(($(now) - t0)) s); dir $dir"
			return 0
		fi
		if [ "$(now)" -ge "$deadline" ]; then
			show_logs "$dir"
			if [ -z "$keep" ]; then
				say "not ready after $START_TIMEOUT s; stopping it"
				stop_pid "$dir" "$pid" || true
			fi
			die "broker did not become ready within $START_TIMEOUT s; logs in $dir/logs"
		fi
		sleep 0.5
	done
}

cmd_start() {
	local dir pid t0 p
	dir="$(run_dir "${1:-}")"
	need java "install a JDK >= 17 (Debian: apt-get install openjdk-17-jdk-headless)"
	lib_complete || cmd_fetch
	pid="$(broker_pid "$dir")"
	if [ -n "$pid" ]; then
		local want="$PORT"
		use_dir_port "$dir"
		[ "$want" = "$PORT" ] || say "warning: the running broker of $dir listens on $PORT, not $want"
		say "already running (pid $pid); checking readiness"
		wait_ready "$dir" "$pid" "$(now)" keep
		return 0
	fi
	rm -f "$dir/kafka.pid"
	for p in "$PORT" "$CPORT"; do
		if port_open "$p"; then
			echo "kafka.sh: error: something already listens on $HOST:$p, not the broker of $dir:" >&2
			who_listens "$p" >&2
			exit 1
		fi
	done
	check_formatted "$dir"
	mkdir -p "$dir/logs"
	write_config "$dir"
	format_storage "$dir"
	# A fresh log per start, so that readiness is read from this run only.
	for f in server.log kafka.out; do
		[ -f "$dir/logs/$f" ] && mv -f "$dir/logs/$f" "$dir/logs/$f.prev"
	done
	say "starting broker on $HOST:$PORT (controller $CPORT), heap '$HEAP', dir $dir"
	t0="$(now)"
	local launcher=()
	command -v setsid >/dev/null 2>&1 && launcher=(setsid)
	# shellcheck disable=SC2086,SC2016 # HEAP is a list of flags; $$ is the inner shell's
	"${launcher[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/kafka.pid" \
		java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$dir/log4j2.xml" -Dkafka.logs.dir="$dir/logs" \
		-cp "$LIB/*" kafka.Kafka "$dir/server.properties" \
		>"$dir/logs/kafka.out" 2>&1 </dev/null &
	# The launcher writes the PID just before exec: wait for it to be the broker's.
	local _
	for _ in $(seq 1 50); do
		pid="$(broker_pid "$dir")"
		[ -n "$pid" ] && break
		sleep 0.1
	done
	if [ -z "$pid" ]; then
		show_logs "$dir"
		die "broker did not start (no live PID in $dir/kafka.pid)"
	fi
	wait_ready "$dir" "$pid" "$t0"
}

# --- stop -------------------------------------------------------------------

# stop_pid DIR PID: SIGTERM, wait, SIGKILL.
stop_pid() {
	local dir="$1" pid="$2" t0 deadline
	t0="$(now)"
	deadline=$((t0 + STOP_TIMEOUT))
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(now)" -ge "$deadline" ]; then
			say "pid $pid still alive $STOP_TIMEOUT s after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			local _
			for _ in $(seq 1 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
			rm -f "$dir/kafka.pid"
			say "killed (pid $pid) after $(($(now) - t0)) s"
			return 0
		fi
		sleep 0.2
	done
	rm -f "$dir/kafka.pid"
	say "stopped (pid $pid, SIGTERM, $(($(now) - t0)) s)"
}

cmd_stop() {
	local dir pid
	dir="$(run_dir "${1:-}")"
	use_dir_port "$dir"
	pid="$(broker_pid "$dir")"
	if [ -z "$pid" ]; then
		rm -f "$dir/kafka.pid"
		say "not running (dir $dir)"
		if port_open "$PORT"; then
			say "note: something else listens on $HOST:$PORT and was left alone:"
			who_listens "$PORT"
		fi
		return 0
	fi
	say "stopping broker (pid $pid) ..."
	stop_pid "$dir" "$pid"
}

# --- status, clean ----------------------------------------------------------

cmd_status() {
	local dir pid
	dir="$(run_dir "${1:-}")"
	use_dir_port "$dir"
	pid="$(broker_pid "$dir")"
	if [ -z "$pid" ]; then
		say "not running (dir $dir)"
		if port_open "$PORT"; then
			say "but something else listens on $HOST:$PORT:"
			who_listens "$PORT"
		fi
		exit 3
	fi
	if port_open "$PORT" && log_ready "$dir"; then
		say "running and ready: $HOST:$PORT (pid $pid); dir $dir"
		return 0
	fi
	say "running (pid $pid) but not ready yet on $HOST:$PORT; dir $dir"
	exit 3
}

cmd_clean() {
	local dir
	dir="$(run_dir "${1:-}")"
	cmd_stop "$dir"
	rm -rf "$dir"
	say "removed $dir"
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
status) cmd_status "${2:-}" ;;
clean) cmd_clean "${2:-}" ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
