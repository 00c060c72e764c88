# bench/lib.sh - helpers shared by bench/run.sh and bench/analytics.sh
# (sourced, not run).

log() { printf '%s\n' "$*" >&2; }

# Stop a background process of this shell, if it still runs, and reap it.
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

# Remove the work directory $1, or keep it (BENCH_KEEP=1) and say where;
# $2 names the script in that message.
drop_workdir() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "$2: work dir kept: $1"
    else
        rm -rf "$1"
    fi
}
