#!/bin/sh
# Flame graphs of the server's CPU, one per load scenario, pinned like the
# load benchmark (server on CPU 0, load generator on CPU 1, tmpfs,
# DLREPO_FSYNC=0). Every sample of CPU 0 that belongs to the server's
# threads (the runtime thread and its io-wq workers) within the scenario's
# time window is kept.
#
#   benches/profile.sh [out-dir]     # default docs/flamegraphs
#
# Needs perf (Debian: linux-perf) and inferno (cargo install inferno).
set -eu
out=${1:-docs/flamegraphs}
dir=${PROFILE_DIR:-/dev/shm/dlrepo-profile}
mkdir -p "$out"
cargo bench --bench load --no-run 2>/dev/null
bench=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)
data=$(mktemp /tmp/dlrepo-profile.XXXXXX)
log=$(mktemp /tmp/dlrepo-profile-log.XXXXXX)
folded=$(mktemp /tmp/dlrepo-profile-folded.XXXXXX)
trap 'rm -f "$data" "$log"; [ -n "${KEEP_FOLDED:-}" ] || rm -f "$folded"' EXIT

# Where the server's CPU went. Kernel work is told by its entry point (an
# io-wq worker's operation, a system call); user-space work by the deepest
# frame of a known family (an allocator call inside our handler counts as
# the allocator, our handler called by hyper counts as ours). A folded line
# is "frame;frame;... weight".
summarise() {
    awk '
    function rule(p, label) { n++; pat[n] = p; name[n] = label }
    BEGIN {
        rule("^io-wq worker;.*io_openat2", "io-wq: open, create")
        rule("^io-wq worker;.*io_renameat", "io-wq: rename")
        rule("^io-wq worker;.*io_linkat", "io-wq: link")
        rule("^io-wq worker;.*(io_write|io_read)", "io-wq: file data read or write")
        rule("^io-wq worker;.*io_splice", "io-wq: splice file to pipe")
        rule("^io-wq worker;.*(io_statx|io_unlinkat|io_mkdirat)", "io-wq: statx, unlink, mkdir")
        rule("^io-wq worker;", "io-wq: other")
        rule("sha2::", "SHA-256")
        rule("__sys_sendto|tcp_sendmsg|splice_to_socket", "send: TCP out, loopback delivery, client wake-up")
        rule("__sys_recvfrom|tcp_recvmsg", "receive: TCP in")
        rule("io_uring_enter", "ring: submit and reap")
        rule("epoll_wait", "socket readiness (epoll)")
        rule("asm_exc_page_fault", "page faults")
        rule("entry_SYSCALL", "other system calls")
        fam["dlrepo"] = "our code (handlers, store, batching)"
        fam["hyper"] = "hyper and httparse"
        fam["tokio"] = "tokio and tokio-uring runtime"
        fam["alloc"] = "allocator"
        fam["other"] = "other user space, interrupts"
    }
    {
        c = $NF; stack = $0; sub(/ [0-9]+$/, "", stack); total += c
        for (i = 1; i <= n; i++) if (stack ~ pat[i]) { got[name[i]] += c; next }
        k = split(stack, f, ";"); which = "other"
        for (j = 1; j <= k; j++) {
            if (f[j] ~ /^_?mi_|malloc|^free|^__rust_(alloc|dealloc|realloc)/) which = "alloc"
            else if (f[j] ~ /^<?dlrepo::/) which = "dlrepo"
            else if (f[j] ~ /^<?(hyper|httparse|http)::/) which = "hyper"
            else if (f[j] ~ /^<?(tokio|tokio_uring|io_uring|mio)::/) which = "tokio"
        }
        got[fam[which]] += c
    }
    END {
        print "| where | share |"; print "|---|---:|"
        for (i = 1; i <= n; i++) if (got[name[i]] > 0) { printf "| %s | %.1f %% |\n", name[i], 100 * got[name[i]] / total; got[name[i]] = 0 }
        split("dlrepo hyper tokio alloc other", order, " ")
        for (i = 1; i <= 5; i++) if (got[fam[order[i]]] > 0) printf "| %s | %.1f %% |\n", fam[order[i]], 100 * got[fam[order[i]]] / total
    }'
}

# scenario letters to run, the one to keep (c and d need b's uploads), file name
for spec in "a a large-upload" "b b small-upload" "bd d small-download" "e e large-download"; do
    set -- $spec
    perf record -q -a -C 0 -k CLOCK_MONOTONIC --call-graph dwarf,16384 -F 999 -o "$data" -- \
        "$bench" --servers ours --scenarios "$1" --small 40000 --download-rounds 3 --dir "$dir" \
        >/dev/null 2>"$log"
    # The last scenario's window: the begin line before its end line.
    window=$(awk '/^scenario begins at/ {b=$4} /^scenario ends at/ {sub(":", "", $4); e=$4} END {print b "," e}' "$log")
    perf script -i "$data" --time "$window" 2>/dev/null \
        | inferno-collapse-perf \
        | sed -E 's/^iou-wrk-[0-9]+/io-wq worker/' \
        | grep -E '^(dlrepo|io-wq worker);' > "$folded"
    inferno-flamegraph --title "dlrepo-rs, $3 (server CPU only)" --minwidth 0.2 < "$folded" > "$out/$3.svg"
    echo "## $3: $out/$3.svg (window $window)"
    summarise < "$folded"
done
