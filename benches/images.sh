#!/usr/bin/env bash
# Benchmark: `images build` against the usual daemonless peer, umoci, assembling the same image
# (one resource binary, CA bundle, passwd/group, /opt/resource/{check,in,out}, user, env, labels)
# from the same files, in one run (ours also writes the oci-archive, docker-archive and base tar;
# umoci only the layout). Prints wall times, the ratio umoci/ours, compressed sizes, and whether
# two runs of each give the same manifest digest (reproducibility).
# Full run: benches/images.sh (all four types from the debug binaries, 5 rounds).
# SMOKE=1: one type, one round, in seconds (CI does that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then types=${TYPES:-registry-tag} rounds=${ROUNDS:-1}
else types=${TYPES:-git registry-image registry-tag nix-cache} rounds=${ROUNDS:-5}; fi
for tool in umoci jq strip awk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
for t in $types; do
  [ -x "target/debug/$t-resource" ] || cargo build -q -p "$t-resource"
done
[ -x target/debug/images ] || cargo build -q -p images
work=$(mktemp -d "${TMPDIR:-/tmp}/images-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Frozen copies: a concurrent cargo build must not change the inputs between two rounds.
bins=$work/bin
mkdir -p "$bins"
for t in $types; do cp "target/debug/$t-resource" "$bins/"; done
cp target/debug/images "$work/images"
images=$work/images
ca=/etc/ssl/certs/ca-certificates.crt

now() { date +%s.%N; }
ours() { # out type
  "$images" build --out "$1" --binaries "$bins" --types "$2" --revision bench 2>/dev/null
  jq -r '.[0].manifest_digest + " " + (.[0].compressed_size|tostring)' "$1/images.json"
}
theirs() { # dir type: the same image with umoci (init, new, unpack, add files, repack, config)
  local d=$1 t=$2 l=$1/layout b=$1/bundle
  umoci init --layout "$l" && umoci new --image "$l:t"
  umoci unpack --image "$l:t" "$b" >/dev/null
  local r=$b/rootfs
  mkdir -p "$r/opt/resource" "$r/etc/ssl/certs" "$r/tmp" "$r/root"
  strip --strip-all -o "$r/opt/resource/$t-resource" "$bins/$t-resource"
  for op in check in out; do ln -s "$t-resource" "$r/opt/resource/$op"; done
  cp "$ca" "$r/etc/ssl/certs/"; chmod 1777 "$r/tmp"; chmod 700 "$r/root"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$r/etc/group"
  for lib in $(ldd "$r/opt/resource/$t-resource" | grep -o '/[^ ]*'); do
    mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"
  done
  umoci repack --image "$l:t" "$b"
  umoci config --image "$l:t" --config.user root \
    --config.env PATH=/opt/resource:/usr/local/bin:/usr/bin:/bin \
    --config.label org.opencontainers.image.title="$t-resource"
  local m; m=$(jq -r '.manifests[0].digest' "$l/index.json")
  echo "$m $(( $(stat -c %s "$l/blobs/sha256/${m#sha256:}") + $(jq '[.layers[].size, .config.size]|add' "$l/blobs/sha256/${m#sha256:}") ))"
}

printf '%-15s %10s %10s %7s %12s %12s %s\n' type ours_s umoci_s ratio ours_bytes umoci_bytes reproducible
for t in $types; do
  ours_total=0 theirs_total=0 ours_digests="" theirs_digests=""
  for i in $(seq "$rounds"); do
    s=$(now); read -r od osize < <(ours "$work/ours-$t-$i" "$t"); e=$(now)
    ours_total=$(awk "BEGIN{print $ours_total + $e - $s}")
    mkdir -p "$work/umoci-$t-$i"
    s=$(now); read -r td tsize < <(theirs "$work/umoci-$t-$i" "$t" 2>/dev/null | tail -1); e=$(now)
    theirs_total=$(awk "BEGIN{print $theirs_total + $e - $s}")
    ours_digests="$ours_digests $od" theirs_digests="$theirs_digests $td"
    sleep 1 # umoci stamps times in seconds: let two rounds differ as two CI runs would
  done
  [ "$rounds" -gt 1 ] || { sleep 1; ours "$work/ours-$t-x" "$t" >/dev/null; }
  o=$(awk "BEGIN{printf \"%.3f\", $ours_total / $rounds}"); u=$(awk "BEGIN{printf \"%.3f\", $theirs_total / $rounds}")
  n_ours=$(jq -r '.[0].manifest_digest' "$work"/ours-$t-*/images.json | sort -u | grep -c .)
  mkdir -p "$work/umoci-$t-y"; td2=$(theirs "$work/umoci-$t-y" "$t" 2>/dev/null | tail -1 | cut -d' ' -f1)
  n_theirs=$(echo $theirs_digests "$td2" | tr ' ' '\n' | sort -u | grep -c .)
  printf '%-15s %10s %10s %6.2fx %12s %12s ours:%s umoci:%s\n' "$t" "$o" "$u" \
    "$(awk "BEGIN{print $u / $o}")" "$osize" "$tsize" \
    "$([ "$n_ours" = 1 ] && echo yes || echo no)" "$([ "$n_theirs" = 1 ] && echo yes || echo no)"
done
