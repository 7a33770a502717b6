#!/usr/bin/env bash
# Benchmark: nix-cache-resource against real Nix on the same nginx WebDAV cache, in one run.
#   push:    our `out` (zstd)   vs  nix copy --to 'http://…?compression=zstd&secret-key=…'
#   re-push: our `out` again on a fully present closure (target ≤ 0.2 s)
#   fetch:   our `in` (closure, verified, cache/ laid out)  vs  nix copy --from http://… --to <store>
# The closure: N paths of random data (nix-store --add) plus one input-addressed root that
# references them all. Prints times, ratios and our peak RSS.
# Full run: benches/nix-cache.sh (N=200 × 2.5 MB ≈ 500 MB, release build; ~2 minutes).
# SMOKE=1: 5 tiny paths with the debug build, in seconds (CI does that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then
  n=${N:-5} kb=${KB:-64}
  cargo build -q -p nix-cache-resource
  bin=$PWD/target/debug/nix-cache-resource
else
  n=${N:-200} kb=${KB:-2560}
  cargo build -q --release -p nix-cache-resource
  bin=$PWD/target/release/nix-cache-resource
fi
for tool in nix nix-store nix-build nginx python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/nix-cache-bench.XXXXXX")
nginx_pid=""
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export XDG_CACHE_HOME=$work/xdg TRIBUTARY_LOG=${TRIBUTARY_LOG:-warn}
nixopts=(--extra-experimental-features nix-command
  --option narinfo-cache-negative-ttl 0 --option narinfo-cache-positive-ttl 0
  --option download-attempts 1)

# --- nginx WebDAV with two caches, /ours and /nix ---------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/www/ours" "$work/www/nix" "$work/nginx-temp"
cat > "$work/nginx.conf" <<CONF
daemon off; worker_processes 2; user root root; pid $work/nginx.pid; error_log $work/nginx.log;
events { worker_connections 1024; }
http {
  access_log off; client_body_temp_path $work/nginx-temp/body; proxy_temp_path $work/nginx-temp/proxy;
  fastcgi_temp_path $work/nginx-temp/fcgi; scgi_temp_path $work/nginx-temp/scgi; uwsgi_temp_path $work/nginx-temp/uwsgi;
  server { listen 127.0.0.1:$port; root $work/www; client_max_body_size 0;
           location / { dav_methods PUT DELETE; create_full_put_path on; } }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -e "$work/nginx.log" &
nginx_pid=$!
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null && break
  sleep 0.05
done
url=http://127.0.0.1:$port

# --- the closure --------------------------------------------------------------------------------
nix "${nixopts[@]}" key generate-secret --key-name bench-1 > "$work/sec"
nix "${nixopts[@]}" key convert-secret-to-public < "$work/sec" > "$work/pub"
mkdir -p "$work/data"
echo "bench: making $n paths of ${kb} KiB random data" >&2
tag=$(date +%s%N)
for i in $(seq "$n"); do
  head -c "${kb}K" /dev/urandom > "$work/data/blob-$i"
done
nix-store --add "$work"/data/blob-* > "$work/paths"
{
  echo "["; sed 's/.*/  (builtins.storePath "&")/' "$work/paths"; echo "]"
} > "$work/paths.nix"
cat > "$work/root.nix" <<NIX
builtins.derivation {
  name = "bench-root"; system = builtins.currentSystem; builder = "/bin/sh";
  PATH = "/usr/bin:/bin"; tag = "$tag"; deps = import ./paths.nix;
  args = [ "-c" "echo \$deps > \$out" ];
}
NIX
root=$(nix-build "$work/root.nix" --no-out-link 2>/dev/null)
count=$(nix "${nixopts[@]}" path-info -r "$root" | wc -l)
size=$(nix "${nixopts[@]}" path-info -rs "$root" | awk '{s+=$2} END {printf "%.0f", s/1048576}')
echo "bench: closure of $count paths, $size MiB" >&2

secret=$(cat "$work/sec")
public=$(cat "$work/pub")
mkdir -p "$work/src"
echo "$root" > "$work/src/paths"

seconds() { date +%s%N; }
elapsed() { local ns=$(( $2 - $1 )); printf '%d.%03d' $(( ns / 1000000000 )) $(( ns / 1000000 % 1000 )); }

# --- push ---------------------------------------------------------------------------------------
t0=$(seconds)
nix "${nixopts[@]}" copy --to "$url/nix?compression=zstd&secret-key=$work/sec" "$root" 2>"$work/nix-push.log"
t1=$(seconds)
nix_push=$(elapsed "$t0" "$t1")

request=$(python3 -c 'import json,sys; print(json.dumps({"source":{"url":sys.argv[1],"signing_key":sys.argv[2]},"params":{"paths_file":"paths"}}))' "$url/ours" "$secret")
t0=$(seconds)
echo "$request" | /usr/bin/time -f '%M' -o "$work/push.rss" "$bin" out "$work/src" > "$work/push.json"
t1=$(seconds)
our_push=$(elapsed "$t0" "$t1")
push_rss=$(( $(cat "$work/push.rss") / 1024 ))

t0=$(seconds)
echo "$request" | "$bin" out "$work/src" > "$work/repush.json"
t1=$(seconds)
our_repush=$(elapsed "$t0" "$t1")
grep -q '"paths_uploaded","value":"0"' "$work/repush.json" || { echo "bench: re-push uploaded something" >&2; exit 1; }

# Real Nix must accept what we pushed.
nix "${nixopts[@]}" store verify --store "$url/ours" -r --option trusted-public-keys "$public" "$root" 2>"$work/verify.log"

# --- fetch --------------------------------------------------------------------------------------
rm -rf "$XDG_CACHE_HOME"
t0=$(seconds)
nix "${nixopts[@]}" copy --from "$url/ours" --to "$work/nix-store-copy" \
  --option trusted-public-keys "$public" "$root" 2>"$work/nix-fetch.log"
t1=$(seconds)
nix_fetch=$(elapsed "$t0" "$t1")

request=$(python3 -c 'import json,sys; print(json.dumps({"source":{"url":sys.argv[1],"trusted_public_keys":[sys.argv[2]]},"version":{"store_path":sys.argv[3]}}))' "$url/ours" "$public" "$root")
t0=$(seconds)
echo "$request" | /usr/bin/time -f '%M' -o "$work/fetch.rss" "$bin" in "$work/dest" > "$work/fetch.json"
t1=$(seconds)
our_fetch=$(elapsed "$t0" "$t1")
fetch_rss=$(( $(cat "$work/fetch.rss") / 1024 ))
[ "$(cat "$work/dest/store-path")" = "$root" ] || { echo "bench: in did not write store-path" >&2; exit 1; }

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "nix-cache bench: $count paths, $size MiB (zstd), nginx WebDAV on 127.0.0.1"
printf '  push     ours %7ss  nix copy --to   %7ss  ratio %s  (ours peak RSS %s MiB)\n' \
  "$our_push" "$nix_push" "$(ratio "$our_push" "$nix_push")" "$push_rss"
printf '  re-push  ours %7ss  (closure already present)\n' "$our_repush"
printf '  fetch    ours %7ss  nix copy --from %7ss  ratio %s  (ours peak RSS %s MiB)\n' \
  "$our_fetch" "$nix_fetch" "$(ratio "$our_fetch" "$nix_fetch")" "$fetch_rss"
