#!/usr/bin/env bash
# Benchmark: registry-image-resource against skopeo on the same local registry, in one run.
#   pull:   our `in` (format oci-layout)  vs  skopeo copy docker://… oci:…   (target ≤ 0.8×)
#   push:   our `out` (OCI layout)         vs  skopeo copy oci:… docker://…   (to an empty registry)
#   save:   our `out` (docker-save tarball) vs skopeo copy docker-archive:… docker://…, with peak
#           RSS and the most temp disk each used (TMPDIR sampled; the tarball is read in place)
#   rootfs: our `in` (format rootfs), for reference, with its peak RSS (target < 100 MB)
#   digest: our `check` in tag mode       vs  skopeo inspect --raw            (target ≤ 0.5×)
#   semver: our `check` over 1,000 tags, concurrent vs one-at-a-time lookups  (target ≥ 4×)
# The image: 5 layers of random data (incompressible, stored uncompressed), on a
# docker-registry whose storage is on tmpfs. Prints times, ratios and peak RSS.
# Full run: benches/registry-image.sh (5 × 50 MB, release build; about a minute).
# SMOKE=1: 5 × 64 KB and 50 tags with the debug build, in seconds (CI does that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then
  layers=${LAYERS:-5} kb=${KB:-64} tags=${TAGS:-50} reps=${REPS:-5}
  cargo build -q -p registry-image-resource
  bin=$PWD/target/debug/registry-image-resource
else
  layers=${LAYERS:-5} kb=${KB:-51200} tags=${TAGS:-1000} reps=${REPS:-31}
  cargo build -q --release -p registry-image-resource
  bin=$PWD/target/release/registry-image-resource
fi
for tool in docker-registry skopeo python3 sha256sum /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

base=/dev/shm
[ -d "$base" ] && [ -w "$base" ] || base=${TMPDIR:-/tmp}
work=$(mktemp -d "$base/registry-image-bench.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- the registries: one to pull from, an empty one to push to ---------------------------------
# (skopeo remembers where it saw blobs and would mount them from the first registry instead of
# uploading; an empty second registry makes both tools upload every byte.)
start_registry() { # name -> prints 127.0.0.1:PORT
  local name=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/$name.yml" <<CONF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/$name}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port, secret: bench}
CONF
  docker-registry serve "$work/$name.yml" >"$work/$name.log" 2>&1 &
  echo "127.0.0.1:$port $!"
}
read -r host pid < <(start_registry storage); pids+=("$pid")
read -r push_host pid < <(start_registry push-storage); pids+=("$pid")
# A third, for the docker-save push: skopeo would mount blobs it pushed to push-storage before.
read -r save_host pid < <(start_registry save-storage); pids+=("$pid")
for h in "$host" "$push_host" "$save_host"; do
  for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://$h/v2/')" 2>/dev/null && break
    sleep 0.1
  done
done
port=${host#127.0.0.1:}

# --- the image: an OCI layout written here, pushed with skopeo -----------------------------------
layout=$work/layout
mkdir -p "$layout/blobs/sha256" "$work/files"
put_blob() { # file -> prints digest, moves the file into the layout
  local d; d=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$layout/blobs/sha256/$d"; echo "$d"
}
layer_json="" diff_ids=""
for i in $(seq "$layers"); do
  head -c "$((kb * 1024))" /dev/urandom > "$work/files/data-$i"
  tar -C "$work/files" -cf "$work/layer.tar" "data-$i"
  rm "$work/files/data-$i"
  size=$(stat -c %s "$work/layer.tar")
  d=$(put_blob "$work/layer.tar")
  layer_json+="${layer_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$d\",\"size\":$size}"
  diff_ids+="${diff_ids:+,}\"sha256:$d\""
done
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[%s]}}' "$diff_ids" > "$work/config.json"
config_size=$(stat -c %s "$work/config.json")
config_digest=$(put_blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
  "$config_digest" "$config_size" "$layer_json" > "$work/manifest.json"
manifest_size=$(stat -c %s "$work/manifest.json")
manifest_digest=sha256:$(put_blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"t"}}]}' \
  "$manifest_digest" "$manifest_size" > "$layout/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$layout:t" "docker://$host/bench:1.0.0"
rm -rf "$layout"

# --- helpers ------------------------------------------------------------------------------------
now() { date +%s.%N; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
secs() { python3 -c "print(f'{$1:.3f}')"; }
mb() { python3 -c "print(f'{$1/1024:.1f}')"; } # KB -> MB
source_json="{\"repository\":\"$host/bench\""
get_request() { echo "{\"source\":$source_json},\"version\":{\"tag\":\"1.0.0\",\"digest\":\"$manifest_digest\"},\"params\":{\"format\":\"$1\"}}"; }

# --- pull: ours (oci-layout) vs skopeo copy to an OCI layout -----------------------------------
rm -rf "$work/ours"
t0=$(now)
get_request oci-layout | "$bin" in "$work/ours" >/dev/null 2>"$work/ours.log" || { cat "$work/ours.log" >&2; exit 1; }
t1=$(now)
skopeo copy -q --src-tls-verify=false "docker://$host/bench:1.0.0" "oci:$work/skopeo:t"
t2=$(now)
ours_pull=$(python3 -c "print($t1-$t0)") skopeo_pull=$(python3 -c "print($t2-$t1)")
[ "$(cat "$work/ours/digest")" = "$manifest_digest" ] || { echo "bench: wrong digest" >&2; exit 1; }
rm -rf "$work/skopeo"

# --- push: ours (out from the OCI layout) vs skopeo copy oci: docker:// (fresh repos) -----------
rm -f "$work/ours/repository" # no mount hint: every blob is uploaded
echo "{\"source\":{\"repository\":\"$push_host/push-ours\",\"tag\":\"1.0.0\"},\"params\":{\"image\":\"oci\"}}" > "$work/out.json"
t0=$(now)
"$bin" out "$work/ours" < "$work/out.json" >/dev/null 2>"$work/out.log" || { cat "$work/out.log" >&2; exit 1; }
t1=$(now)
skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$work/ours/oci:1.0.0" "docker://$push_host/push-skopeo:1.0.0"
t2=$(now)
ours_push=$(python3 -c "print($t1-$t0)") skopeo_push=$(python3 -c "print($t2-$t1)")
rm -rf "$work/ours"

# --- push of a docker-save tarball: ours (read in place) vs skopeo copy docker-archive: -----------
# Both push every byte to fresh repositories of a registry neither has pushed to (skopeo would
# mount what it pushed elsewhere), skopeo with --preserve-digests so it uploads the uncompressed
# layers as they are (as we do) instead of gzipping them first. Temp disk: each tool gets its own
# TMPDIR, sampled during a second run (the sampling costs CPU, so it is not timed).
mkdir -p "$work/save" "$work/tmp-ours" "$work/tmp-skopeo"
skopeo copy -q --src-tls-verify=false "docker://$host/bench:1.0.0" "docker-archive:$work/save/image.tar:bench:1.0.0"
save_mb=$(( $(stat -c %s "$work/save/image.tar") / 1024 / 1024 ))
peak_tmp() { # dir cmd... -> runs cmd with TMPDIR=dir, prints the most KB seen under dir meanwhile
  local dir=$1 max=0 kb pid; shift
  TMPDIR=$dir "$@" & pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    kb=$(du -sk "$dir" 2>/dev/null | cut -f1); [ "${kb:-0}" -gt "$max" ] && max=$kb
    sleep 0.02
  done
  wait "$pid"
  echo "$max"
}
echo "{\"source\":{\"repository\":\"$save_host/save-ours\",\"tag\":\"1.0.0\"},\"params\":{\"image\":\"image.tar\"}}" > "$work/save.json"
# Timed runs (with peak RSS), then runs whose temp dir is sampled (the sampling costs CPU).
t0=$(now)
TMPDIR=$work/tmp-ours /usr/bin/time -f '%M' -o "$work/rss-save-ours" "$bin" out "$work/save" < "$work/save.json" >/dev/null 2>"$work/save.log" \
  || { cat "$work/save.log" >&2; exit 1; }
t1=$(now)
TMPDIR=$work/tmp-skopeo /usr/bin/time -f '%M' -o "$work/rss-save-skopeo" skopeo copy -q --preserve-digests --dest-tls-verify=false \
  "docker-archive:$work/save/image.tar" "docker://$save_host/save-skopeo:1.0.0"
t2=$(now)
ours_save=$(python3 -c "print($t1-$t0)") skopeo_save=$(python3 -c "print($t2-$t1)")
ours_save_tmp=$(peak_tmp "$work/tmp-ours" sh -c "'$bin' out '$work/save' < '$work/save.json' >/dev/null 2>&1")
skopeo_save_tmp=$(peak_tmp "$work/tmp-skopeo" skopeo copy -q --preserve-digests --dest-tls-verify=false \
  "docker-archive:$work/save/image.tar" "docker://$save_host/save-skopeo-again:1.0.0")
ours_save_rss=$(tail -1 "$work/rss-save-ours") skopeo_save_rss=$(tail -1 "$work/rss-save-skopeo")
grep -q "read in place" "$work/save.log" || { echo "bench: the tarball was not read in place" >&2; cat "$work/save.log" >&2; exit 1; }
# Same config and layers pushed by both.
blobs_of() { skopeo inspect --raw --tls-verify=false "docker://$save_host/$1:1.0.0" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["config"]["digest"], *[l["digest"] for l in m["layers"]])'; }
[ "$(blobs_of save-ours)" = "$(blobs_of save-skopeo)" ] || { echo "bench: docker-save pushes differ" >&2; exit 1; }
rm -rf "$work/save"

# --- rootfs with peak memory ---------------------------------------------------------------------
t0=$(now)
get_request rootfs | /usr/bin/time -f '%M' -o "$work/rss" "$bin" in "$work/rootfs" >/dev/null 2>"$work/rootfs.log" || { cat "$work/rootfs.log" >&2; exit 1; }
t1=$(now)
rootfs_time=$(python3 -c "print($t1-$t0)") rss_kb=$(tail -1 "$work/rss")
rm -rf "$work/rootfs"

# --- digest lookup: ours (tag mode check) vs skopeo inspect --------------------------------------
echo "{\"source\":$source_json,\"tag\":\"1.0.0\"}}" > "$work/check-tag.json"
# Alternating runs, medians: robust against a busy machine.
read -r ours_digest skopeo_digest < <(python3 - "$bin" "$work/check-tag.json" "$host" "$reps" <<'PY'
import statistics, subprocess, sys, time
binary, request, host, reps = sys.argv[1], open(sys.argv[2], "rb").read(), sys.argv[3], int(sys.argv[4])
def timed(args, stdin=None):
    start = time.perf_counter()
    subprocess.run(args, input=stdin, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start
ours, skopeo = [], []
for _ in range(reps):
    ours.append(timed([binary, "check"], request))
    skopeo.append(timed(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/bench:1.0.0"]))
print(statistics.median(ours), statistics.median(skopeo))
PY
)

# --- semver check over many tags: concurrent vs one at a time ------------------------------------
# Tags are written straight into the registry's storage (what a push of a tag writes).
repo_dir=$work/storage/docker/registry/v2/repositories/bench/_manifests/tags
hex=${manifest_digest#sha256:}
for i in $(seq 1 "$tags"); do
  mkdir -p "$repo_dir/1.$i.0/current" "$repo_dir/1.$i.0/index/sha256/$hex"
  echo -n "$manifest_digest" > "$repo_dir/1.$i.0/current/link"
  echo -n "$manifest_digest" > "$repo_dir/1.$i.0/index/sha256/$hex/link"
done
check_semver="{\"source\":$source_json}}"
t0=$(now)
echo "$check_semver" | "$bin" check > "$work/semver.json"
t1=$(now)
echo "$check_semver" | TRIBUTARY_LOOKUP_CONCURRENCY=1 "$bin" check > "$work/semver-1.json"
t2=$(now)
cmp -s "$work/semver.json" "$work/semver-1.json" || { echo "bench: semver answers differ" >&2; exit 1; }
ours_semver=$(python3 -c "print($t1-$t0)") serial_semver=$(python3 -c "print($t2-$t1)")

# The same over a link with latency, as to a real registry: a proxy delays each request by
# $rtt_ms (on 127.0.0.1 the registry's own CPU, not the network, bounds the gain above).
rtt_ms=${RTT_MS:-5}
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/proxy.py" <<PY
import asyncio
async def pipe(reader, writer, delay):
    try:
        while data := await reader.read(65536):
            if delay: await asyncio.sleep(delay)
            writer.write(data); await writer.drain()
    except Exception: pass
    finally: writer.close()
async def handle(client_r, client_w):
    server_r, server_w = await asyncio.open_connection("127.0.0.1", $port)
    await asyncio.gather(pipe(client_r, server_w, $rtt_ms / 1000), pipe(server_r, client_w, 0))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", $proxy_port)
    async with server: await server.serve_forever()
asyncio.run(main())
PY
python3 "$work/proxy.py" & pids+=("$!")
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$proxy_port))" 2>/dev/null && break; sleep 0.1; done
echo "{\"source\":{\"repository\":\"127.0.0.1:$proxy_port/bench\"}}" > "$work/check-semver-rtt.json"
t0=$(now)
"$bin" check < "$work/check-semver-rtt.json" > "$work/semver-rtt.json"
t1=$(now)
TRIBUTARY_LOOKUP_CONCURRENCY=1 "$bin" check < "$work/check-semver-rtt.json" > "$work/semver-rtt-1.json"
t2=$(now)
cmp -s "$work/semver-rtt.json" "$work/semver-rtt-1.json" || { echo "bench: semver answers differ" >&2; exit 1; }
ours_semver_rtt=$(python3 -c "print($t1-$t0)") serial_semver_rtt=$(python3 -c "print($t2-$t1)")

total_mb=$((layers * kb / 1024))
echo "registry-image benchmark: $layers layers × $kb KB (${total_mb} MB), $tags tags, $(basename "$(dirname "$bin")") build"
echo "pull to OCI layout:  ours $(secs "$ours_pull") s   skopeo copy $(secs "$skopeo_pull") s   ratio $(ratio "$ours_pull" "$skopeo_pull") (target ≤ 0.8)"
echo "push from layout:    ours $(secs "$ours_push") s   skopeo copy $(secs "$skopeo_push") s   ratio $(ratio "$ours_push" "$skopeo_push")"
echo "push docker-save:    ours $(secs "$ours_save") s, $((ours_save_rss / 1024)) MB RSS, $(mb "$ours_save_tmp") MB temp   skopeo copy $(secs "$skopeo_save") s, $((skopeo_save_rss / 1024)) MB RSS, $(mb "$skopeo_save_tmp") MB temp   ratio $(ratio "$ours_save" "$skopeo_save") (${save_mb} MB tarball)"
echo "pull to rootfs:      ours $(secs "$rootfs_time") s   peak RSS $((rss_kb / 1024)) MB (target < 100)"
echo "digest lookup (median of $reps): ours $(secs "$ours_digest") s   skopeo inspect $(secs "$skopeo_digest") s   ratio $(ratio "$ours_digest" "$skopeo_digest") (target ≤ 0.5)"
echo "semver check:        concurrent $(secs "$ours_semver") s   one at a time $(secs "$serial_semver") s   speed-up $(ratio "$serial_semver" "$ours_semver")× (127.0.0.1, CPU-bound)"
echo "semver check ${rtt_ms}ms:   concurrent $(secs "$ours_semver_rtt") s   one at a time $(secs "$serial_semver_rtt") s   speed-up $(ratio "$serial_semver_rtt" "$ours_semver_rtt")× (target ≥ 4)"
