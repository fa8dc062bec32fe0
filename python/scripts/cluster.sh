#!/usr/bin/env bash
# `make cluster`: 3 etcd members and 3 fencelock nodes on loopback, data in ./.fencelock-cluster.
# Ctrl-C stops them all. Installs Debian's etcd-server when missing (root only).
#   FENCELOCK=path/to/fencelock   the fencelock command (default: fencelock on PATH)
set -euo pipefail
data="${CLUSTER_DIR:-./.fencelock-cluster}"
fencelock="${FENCELOCK:-fencelock}"
if ! command -v etcd >/dev/null; then
    apt-get install -y -qq etcd-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null; }
fi
mkdir -p "$data"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
initial="e1=http://127.0.0.1:2380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380"
state=new
[ -d "$data/etcd1/member" ] && state=existing
prefixes=("" "" "2" "3")  # member i listens on ${prefix}2379 (client) and ${prefix}2380 (peer)
for i in 1 2 3; do
    prefix="${prefixes[$i]}"
    etcd --name "e$i" --data-dir "$data/etcd$i" \
        --listen-client-urls "http://127.0.0.1:${prefix}2379" --advertise-client-urls "http://127.0.0.1:${prefix}2379" \
        --listen-peer-urls "http://127.0.0.1:${prefix}2380" --initial-advertise-peer-urls "http://127.0.0.1:${prefix}2380" \
        --initial-cluster "$initial" --initial-cluster-state "$state" --initial-cluster-token fencelock-cluster \
        --auto-compaction-mode revision --auto-compaction-retention 1000 \
        >"$data/etcd$i.log" 2>&1 &
    pids+=($!)
done
endpoints="http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379"
sleep 2
for port in 7381 7382 7383; do
    "$fencelock" serve --etcd "$endpoints" --cluster local --host 127.0.0.1 --port "$port" \
        --advertise "127.0.0.1:$port" >"$data/node-$port.log" 2>&1 &
    pids+=($!)
done
sleep 2
cat <<TEXT
fencelock cluster 'local': etcd at $endpoints, nodes at 127.0.0.1:7381, :7382, :7383
logs in $data. Find the leader:   for p in 7381 7382 7383; do redis-cli -p \$p info cluster | grep role; done
then:  redis-cli -p <leader port> ACQUIRE mylock 30000      (followers answer -MOVED <leader>)
Ctrl-C stops everything.
TEXT
wait
