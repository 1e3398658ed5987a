#!/usr/bin/env bash
# N `h1bkv serve` replicas behind nginx (Debian nginx: least-connections upstream, streaming
# passed through unbuffered), all on loopback, in the foreground until interrupted.
# Usage: scripts/serve_scaleout.sh PORT N -- SERVE_ARGS...   (e.g. 8080 2 -- -m MODEL --cache f16)
# Prints "scaleout: http://127.0.0.1:PORT -> REPLICA_PORTS" once every replica listens.
# On many machines: the same nginx config with each replica's host:port in the upstream block
# (replicas started with --host set to an address nginx can reach, and --api-key).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] && [ "$3" = "--" ] || { echo "usage: $0 PORT N -- SERVE_ARGS..." >&2; exit 2; }
port=$1 n=$2
shift 3
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "scaleout: nginx is not installed (apt-get install nginx)" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
dir=$(mktemp -d /tmp/h1bkv_scaleout.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

replica_ports=()
for i in $(seq 1 "$n"); do
  build/h1bkv serve "$@" --host 127.0.0.1 --port 0 2>"$dir/replica$i.log" &
  pids+=($!)
done
for i in $(seq 1 "$n"); do
  for _ in $(seq 1 600); do
    p=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$dir/replica$i.log")
    [ -n "$p" ] && break
    kill -0 "${pids[$((i - 1))]}" 2>/dev/null || { cat "$dir/replica$i.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$p" ] || { echo "scaleout: replica $i did not start" >&2; exit 1; }
  replica_ports+=("$p")
done

{
  echo "worker_processes 1; pid $dir/nginx.pid; error_log $dir/error.log;"
  echo "events { worker_connections 1024; }"
  echo "http {"
  echo "  access_log off; client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;"
  echo "  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;"
  echo "  client_max_body_size 1m;"
  echo "  upstream h1bkv { least_conn;"
  for p in "${replica_ports[@]}"; do echo "    server 127.0.0.1:$p;"; done
  echo "  }"
  echo "  server { listen 127.0.0.1:$port;"
  echo "    location / { proxy_pass http://h1bkv; proxy_http_version 1.1; proxy_set_header Connection \"\";"
  echo "      proxy_buffering off; proxy_cache off; proxy_read_timeout 600s; }"
  echo "  }"
  echo "}"
} > "$dir/nginx.conf"
"$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/health" && break
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$dir/error.log" >&2; exit 1; }
  sleep 0.1
done
echo "scaleout: http://127.0.0.1:$port -> ${replica_ports[*]}"
wait
