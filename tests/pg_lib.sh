# pg_lib.sh — a throwaway PostgreSQL for the tests (sourced by tests/pg.sh).
# pg_start DIR: initdb into DIR/data as the unprivileged postgres user
# (initdb and postgres refuse root), a socket directory of its own and a
# free loopback port; sets PG_URI (postgresql://postgres@127.0.0.1:PORT)
# and PG_PID, the postmaster's pid. pg_stop / pg_restart stop and start
# that server by its own data directory and pid; nothing touches the
# system's clusters or services. PG_OPTS adds server options (bench/scale.sh). pg_start returns 1 when PostgreSQL is not
# installed (PG_SKIP says why; the caller fails loudly) and 2 when it is but did not start (PG_ERR).

PG_BIN=""
for d in /usr/local/bin /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && PG_BIN=$d; done
PG_USER=postgres
PG_DIR=""
PG_PID=""
PG_PORT=""
PG_URI=""
PG_SKIP=""
PG_ERR=""

# pg_as CMD...: runs a server binary as the unprivileged user (as ourselves when not root)
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

pg_usable() {
    [ -n "$PG_BIN" ] || { PG_SKIP="no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): run scripts/deps.sh"; return 1; }
    if [ "$(id -u)" -eq 0 ]; then
        id "$PG_USER" >/dev/null 2>&1 || { PG_SKIP="no '$PG_USER' system user to run the server as"; return 1; }
        command -v runuser >/dev/null 2>&1 || { PG_SKIP="no runuser"; return 1; }
    fi
    return 0
}

# pg_server_start: starts the initialised cluster on PG_PORT; 0 when it accepts connections
pg_server_start() {
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -w -t 60 -l "$PG_DIR/log" \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR/sock -c max_connections=200 ${PG_OPTS:-}" start >/dev/null 2>&1 || return 1
    PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
    [ -n "$PG_PID" ]
}

pg_start() {
    pg_usable || return 1
    PG_DIR=$1
    mkdir -p "$PG_DIR/sock"
    [ "$(id -u)" -eq 0 ] && chown -R "$PG_USER" "$PG_DIR"
    chmod 700 "$PG_DIR"
    pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 ||
        { PG_ERR="initdb failed: $(tail -3 "$PG_DIR/initdb.log" | tr '\n' ' ')"; return 2; }
    tries=0
    # a random free port below the kernel's ephemeral range (a taken one makes the start fail), so
    # a restart under load cannot find it held by one of the clients' own outgoing connections
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
    while [ $tries -lt 8 ]; do
        PG_PORT=$((10000 + $(od -An -tu2 -N2 /dev/urandom | tr -d ' ') % (lo - 10000)))
        if pg_server_start; then
            PG_URI="postgresql://postgres@127.0.0.1:$PG_PORT"
            return 0
        fi
        tries=$((tries + 1))
    done
    PG_ERR="the server did not start: $(tail -5 "$PG_DIR/log" 2>/dev/null | tr '\n' ' ')"
    return 2
}

# pg_stop: fast shutdown of our server, then its pid must be gone
pg_stop() {
    [ -n "$PG_PID" ] || return 0
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 || kill "$PG_PID" 2>/dev/null
    i=0
    while kill -0 "$PG_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    PG_PID=""
}

# pg_restart: the same cluster on the same port again (a few tries: the
# old server's port may take a moment to be free)
pg_restart() {
    for t in 1 2 3 4 5; do
        pg_server_start && return 0
        sleep 0.5
    done
    PG_ERR="the server did not start again: $(tail -5 "$PG_DIR/log" 2>/dev/null | tr '\n' ' ')"
    echo "# pg: $PG_ERR" >&2
    return 1
}

# pg_sql DB SQL: runs SQL through psql on our socket
pg_sql() {
    "$PG_BIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}
