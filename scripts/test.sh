#!/usr/bin/env bash
# Run dsrepo's test suite on a fresh machine:   bash scripts/test.sh [pytest args...]
#
#  1. creates/updates the virtualenv .venv in the repo root (pip install -e '.[test,viz,datumaro]');
#  2. makes sure PostgreSQL 15 and Chromium are installed (Debian's `postgresql` and `chromium`
#     packages, only if missing; the web app's tests drive /usr/bin/chromium);
#  3. starts a throw-away PostgreSQL server (temp data dir, 127.0.0.1 on a free port,
#     trust auth, fsync off) and exports DSREPO_TEST_PG_URL pointing at it;
#  4. runs `python -m pytest "$@"` with the venv's python;
#  5. stops the server and removes its temp dir on exit, whatever happens.
#
# Exit status: pytest's, except "no tests collected" (5) becomes 1; 2 if setup fails.
# Environment overrides: PG_BIN (dir with initdb, postgres, pg_ctl, pg_isready),
# PYTHON (interpreter used to create .venv).
set -euo pipefail

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 2; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1

# Run a command as root: directly when root, else through sudo, else fail clearly.
root_cmd() {
    if [[ $IS_ROOT -eq 1 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* -- not root and sudo is not available; run as root or install it by hand"
    fi
}

# ---------------------------------------------------------------- temp dir + cleanup
# /tmp explicitly (not $TMPDIR): the postgres user must be able to reach it, and the unix
# socket path inside it must stay short (< 108 bytes).
WORK_TMP="$(mktemp -d /tmp/dsrepo-test.XXXXXXXX)"
PG_DATA="$WORK_TMP/data"
PG_SOCK="$WORK_TMP/sock"
PG_LOG="$WORK_TMP/server.log"
PG_PID=""   # our background job: runuser (which waits for the postmaster), or postgres itself

# Stop the server started below (if any) and reap it. The postmaster runs as a child of
# this script rather than daemonized by `pg_ctl start`, so nothing outlives the script,
# not even a zombie. runuser forks and waits for the postmaster (and would SIGKILL it 2 s
# after a SIGTERM to runuser), so we signal the postmaster itself via pg_ctl, then reap.
stop_server() {
    [[ -n "$PG_PID" ]] || return 0
    (cd "$WORK_TMP" && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 20 stop) >/dev/null 2>&1
    local i pm
    for i in $(seq 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PG_PID" 2>/dev/null; then
        # pg_ctl could not stop it: kill the postmaster by its pid, then our job.
        pm="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null)"
        [[ "$pm" =~ ^[0-9]+$ ]] && kill -KILL "$pm" 2>/dev/null
        kill -KILL "$PG_PID" 2>/dev/null
    fi
    wait "$PG_PID" 2>/dev/null
    PG_PID=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    if [[ -n "$PG_PID" ]]; then
        log "stopping PostgreSQL"
        stop_server
    fi
    rm -rf "$WORK_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- virtualenv
# Two runs in the same checkout at once must not build/pip-install .venv concurrently:
# hold a lock on the repo root directory while doing so (servers/ports are per run anyway).
if command -v flock >/dev/null 2>&1; then
    exec 9<"$REPO_ROOT"
    flock 9
fi
VENV="$REPO_ROOT/.venv"
VPY="$VENV/bin/python"
if [[ ! -x "$VPY" ]] || ! "$VPY" -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1; then
    PY="${PYTHON:-}"
    if [[ -z "$PY" ]]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
        done
    fi
    [[ -n "$PY" ]] || die "no python3.11 / python3 found"
    "$PY" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
        || die "$PY is not Python >= 3.11"
    log "setting up venv .venv with $("$PY" -c 'import sys; print(sys.executable)')"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "could not create .venv (on Debian: apt-get install python3-venv)"
fi
log "installing dsrepo into .venv (pip install -e '.[test,viz,datumaro]')"
# Quiet: pip's output (incl. setuptools' build warnings) is shown only if the install fails.
if ! "$VPY" -m pip install -q --disable-pip-version-check -e '.[test,viz,datumaro]' >"$WORK_TMP/pip.log" 2>&1; then
    cat "$WORK_TMP/pip.log" >&2
    die "pip install -e '.[test,viz,datumaro]' failed (output above)"
fi
# Bytecode for dsrepo's own modules (pip writes it for the installed libraries, not for an
# editable install): where PYTHONDONTWRITEBYTECODE is set, every dsrepo process the tests
# start would otherwise compile them again (0.1 s a start).
"$VPY" -m compileall -q repo migrations >/dev/null
if command -v flock >/dev/null 2>&1; then
    flock -u 9
    exec 9<&-
fi

# ---------------------------------------------------------------- Debian packages
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "$1 is missing and apt-get is not available"
    if [[ $APT_UPDATED -eq 0 ]]; then
        root_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    root_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 \
        || die "apt-get install $* failed"
}

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
pg_present() {
    local b
    for b in initdb postgres pg_ctl pg_isready; do [[ -x "$PG_BIN/$b" ]] || return 1; done
}
if ! pg_present; then
    log "PostgreSQL 15 not found under $PG_BIN: installing Debian's postgresql package"
    apt_install postgresql
    pg_present || die "postgresql installed, but $PG_BIN lacks initdb/postgres/pg_ctl/pg_isready (not Debian 12 with PostgreSQL 15?)"
fi

# The web app's tests drive a real headless Chromium (Debian's; Playwright's own download
# cannot work here); its fonts package keeps the screenshots legible.
if [[ ! -x /usr/bin/chromium ]]; then
    log "/usr/bin/chromium not found: installing Debian's chromium package"
    apt_install chromium fonts-dejavu-core
    [[ -x /usr/bin/chromium ]] || die "chromium installed, but /usr/bin/chromium is missing"
fi

# ---------------------------------------------------------------- server user
# initdb and postgres refuse to run as root: as root (the normal case here) they run as
# the `postgres` OS user via runuser; as any other user, as that user.
if [[ $IS_ROOT -eq 1 ]]; then
    PG_USER=postgres
    if ! id -u "$PG_USER" >/dev/null 2>&1; then
        log "creating OS user $PG_USER"
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$PG_USER" || die "could not create OS user $PG_USER"
    fi
    AS_PG=(runuser -u "$PG_USER" --)
else
    PG_USER="$(id -un)"
    AS_PG=()
fi
as_pg() { "${AS_PG[@]}" "$@"; }

# ---------------------------------------------------------------- throw-away server
mkdir -p "$PG_SOCK"
if [[ $IS_ROOT -eq 1 ]]; then
    chown "$PG_USER": "$WORK_TMP" "$PG_SOCK"
fi
chmod 700 "$WORK_TMP"

log "initdb in $PG_DATA (as $PG_USER)"
# cd into the temp dir: the postgres user may not be allowed to read the caller's cwd.
(cd "$WORK_TMP" && as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 \
    --locale=C --no-sync) >"$WORK_TMP/initdb.log" 2>&1 \
    || { cat "$WORK_TMP/initdb.log" >&2; die "initdb failed (output above)"; }

cat >>"$PG_DATA/postgresql.conf" <<CONF

# --- dsrepo throw-away test server (scripts/test.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCK'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF

free_port() {
    "$VPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# The free port is picked before the server binds it, so another process could grab it
# in between: retry with a new port a few times if the server does not come up.
PG_PORT=""
for attempt in 1 2 3; do
    port="$(free_port)"
    log "starting PostgreSQL on 127.0.0.1:$port"
    : >"$PG_LOG"
    [[ $IS_ROOT -eq 1 ]] && chown "$PG_USER": "$PG_LOG"
    cd "$WORK_TMP"
    # Not via the as_pg function: a backgrounded function runs in a forked subshell, and
    # $! would then be that subshell instead of runuser/postgres.
    "${AS_PG[@]}" "$PG_BIN/postgres" -D "$PG_DATA" -p "$port" </dev/null >>"$PG_LOG" 2>&1 &
    PG_PID=$!
    cd "$REPO_ROOT"
    for _ in $(seq 300); do   # up to ~30 s
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U postgres -t 1; then
            PG_PORT="$port"
            break 2
        fi
        kill -0 "$PG_PID" 2>/dev/null || break   # server exited (port taken, bad config, ...)
        sleep 0.1
    done
    log "PostgreSQL did not accept connections on port $port (attempt $attempt/3); server log:"
    sed 's/^/    /' "$PG_LOG" >&2 || true
    stop_server || true
done
[[ -n "$PG_PORT" ]] || die "PostgreSQL never accepted connections on 127.0.0.1 (server log above)"

export DSREPO_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"
log "DSREPO_TEST_PG_URL=$DSREPO_TEST_PG_URL"

# ---------------------------------------------------------------- pytest
log "running pytest $*"
set +e
"$VPY" -m pytest "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    log "pytest collected no tests (exit 5): failing with exit 1"
    rc=1
fi
exit "$rc"
