#!/usr/bin/env bash
# Benchmark: orchestration overhead of `tributary run`, and container start per step.
#   chain      JOBS jobs in a `passed:` chain, each `get: repo` (git-resource in, trigger) and two
#              host tasks running `true` = 3 steps per job. Peer: the same work without an
#              orchestrator — a shell loop running git-resource in and `sh -c true` twice per
#              job. Overhead per step = (tributary - shell) / steps (target: < 20 ms).
#   containers one job, STEPS tasks with `image:` a busybox rootfs (given with --override),
#              each running /bin/true, under --runtime host, bwrap and runc. Container start
#              per step = (runtime - host) / STEPS. Peer: raw `bwrap … /bin/true` and
#              `runc run` of a prepared bundle, STEPS times each.
#   base types CHECKS checks of a `mock` resource (`tributary check`) with the base type from its
#              image (built by `images`, unpacked on a warm-up check) under bwrap and runc, and
#              from the host binary. Peer: the bare `mock-resource check`, CHECKS times. Cost
#              of running a base type from its image = (runtime - host) / CHECKS.
# Prints wall times, the per-step figures and the ratios tributary/peer.
# Full run: benches/tributary-run.sh (50 jobs, 20 container steps, release build).
# SMOKE=1: 5 jobs, 3 container steps and 3 checks with the debug build, in seconds (CI does that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then
  jobs=${JOBS:-5} steps=${STEPS:-3} checks=${CHECKS:-3} profile=debug
  cargo build -q -p tributary -p git-resource -p mock-resource -p images
else
  jobs=${JOBS:-50} steps=${STEPS:-20} checks=${CHECKS:-20} profile=release
  cargo build -q --release -p tributary -p git-resource -p mock-resource -p images
fi
for tool in git bwrap runc busybox jq; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
bin=$PWD/target/$profile
work=$(mktemp -d "${TMPDIR:-/tmp}/tributary-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
export GIT_CONFIG_NOSYSTEM=1 HOME=$work GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.com \
  GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.com

# A repository with one commit.
git init -q -b main "$work/repo"
echo hi > "$work/repo/file"
git -C "$work/repo" add file && git -C "$work/repo" commit -q -m one
sha=$(git -C "$work/repo" rev-parse HEAD)

# ---- chain ----
{
  echo "resources:"
  echo "- {name: repo, type: git, check_every: never, source: {uri: $work/repo, branch: main}}"
  echo "jobs:"
  for i in $(seq 1 "$jobs"); do
    passed=""
    [ "$i" -gt 1 ] && passed=", passed: [job-$((i - 1))]"
    echo "- name: job-$i"
    echo "  plan:"
    echo "  - {get: repo, trigger: true$passed}"
    echo "  - {task: a, config: {platform: linux, run: {path: 'true'}}}"
    echo "  - {task: b, config: {platform: linux, run: {path: 'true'}}}"
  done
} > "$work/chain.yml"
start=$(now)
"$bin/tributary" run "$work/chain.yml" --runtime host 2> "$work/chain.log" \
  || { tail -20 "$work/chain.log" >&2; exit 1; }
t_ours=$(echo "$(now) - $start" | bc)
built=$(grep -c ': succeeded$' "$work/chain.log" || true)
[ "$built" = "$jobs" ] || { echo "bench: expected $jobs builds, got $built" >&2; exit 1; }

request="{\"source\":{\"uri\":\"$work/repo\",\"branch\":\"main\"},\"version\":{\"ref\":\"$sha\"}}"
start=$(now)
for i in $(seq 1 "$jobs"); do
  mkdir -p "$work/peer/$i"
  echo "$request" | "$bin/git-resource" in "$work/peer/$i/repo" > /dev/null 2>&1
  sh -c true
  sh -c true
done
t_peer=$(echo "$(now) - $start" | bc)
nsteps=$((jobs * 3))
printf 'chain: %d jobs x 3 steps (%s build)\n' "$jobs" "$profile"
printf '  tributary run  %8.3f s\n  shell loop     %8.3f s\n' "$t_ours" "$t_peer"
printf '  overhead per step: %.1f ms (ratio tributary/shell %.2f)\n' \
  "$(echo "($t_ours - $t_peer) * 1000 / $nsteps" | bc -l)" "$(echo "$t_ours / $t_peer" | bc -l)"

# ---- containers ----
rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0::/root:/bin/sh' > "$rootfs/etc/passwd"
{
  echo "resources:"
  echo "- {name: image, type: git, source: {uri: unused}}"
  echo "jobs:"
  echo "- name: containers"
  echo "  plan:"
  echo "  - {get: image, trigger: true}"
  for i in $(seq 1 "$steps"); do
    echo "  - {task: t$i, image: image, config: {platform: linux, run: {path: /bin/true}}}"
  done
} > "$work/containers.yml"
declare -A took
for rt in host bwrap runc; do
  rm -rf "$work/.tributary"
  start=$(now)
  "$bin/tributary" run "$work/containers.yml" --runtime "$rt" --override "image=$rootfs" \
    2> "$work/containers-$rt.log" || { tail -20 "$work/containers-$rt.log" >&2; exit 1; }
  took[$rt]=$(echo "$(now) - $start" | bc)
done

start=$(now)
for i in $(seq 1 "$steps"); do
  bwrap --bind "$rootfs" / --proc /proc --dev /dev --tmpfs /tmp --unshare-pid \
    --die-with-parent --clearenv --chdir / /bin/true
done
peer_bwrap=$(echo "$(now) - $start" | bc)
bundle=$work/bundle
mkdir -p "$bundle"
(cd "$bundle" && runc spec)
jq --arg root "$rootfs" '.process.terminal = false | .process.args = ["/bin/true"]
  | .root = {path: $root, readonly: true}
  | .linux.namespaces |= map(select(.type != "network"))' \
  "$bundle/config.json" > "$bundle/c.json" && mv "$bundle/c.json" "$bundle/config.json"
start=$(now)
for i in $(seq 1 "$steps"); do
  runc --root "$work/runc" run --bundle "$bundle" "bench-$$-$i" < /dev/null > /dev/null
done
peer_runc=$(echo "$(now) - $start" | bc)

printf 'containers: 1 job x %d tasks with an image\n' "$steps"
for rt in host bwrap runc; do
  printf '  tributary --runtime %-5s %8.3f s\n' "$rt" "${took[$rt]}"
done
per() { echo "($1 - ${took[host]}) * 1000 / $steps" | bc -l; }
printf '  container start per step: bwrap %.1f ms (raw bwrap %.1f ms, ratio %.2f)\n' \
  "$(per "${took[bwrap]}")" "$(echo "$peer_bwrap * 1000 / $steps" | bc -l)" \
  "$(echo "$(per "${took[bwrap]}") / ($peer_bwrap * 1000 / $steps)" | bc -l)"
printf '                            runc  %.1f ms (raw runc  %.1f ms, ratio %.2f)\n' \
  "$(per "${took[runc]}")" "$(echo "$peer_runc * 1000 / $steps" | bc -l)" \
  "$(echo "$(per "${took[runc]}") / ($peer_runc * 1000 / $steps)" | bc -l)"

# ---- base types ----
"$bin/images" build --binaries "$bin" --types mock --out "$work/images" 2> "$work/images.log" \
  || { tail -20 "$work/images.log" >&2; exit 1; }
mkdir -p "$work/base"
echo '{resources: [{name: m, type: mock, source: {initial_version: v1}}], jobs: [{name: j, plan: [{get: m}]}]}' \
  > "$work/base/pipeline.yml"
declare -A checked
for rt in host bwrap runc; do
  rm -rf "$work/base/.tributary"
  # Warm-up: unpacks the image into the rootfs cache (not timed).
  "$bin/tributary" check "$work/base/pipeline.yml" m --runtime "$rt" --images "$work/images" \
    > /dev/null 2> "$work/base-$rt.log" || { tail -20 "$work/base-$rt.log" >&2; exit 1; }
  if [ "$rt" != host ] && ! grep -q 'running from the image' "$work/base-$rt.log"; then
    echo "bench: mock did not run from its image under $rt" >&2; exit 1
  fi
  start=$(now)
  for i in $(seq 1 "$checks"); do
    "$bin/tributary" check "$work/base/pipeline.yml" m --runtime "$rt" --images "$work/images" \
      > /dev/null 2>> "$work/base-$rt.log" || { tail -20 "$work/base-$rt.log" >&2; exit 1; }
  done
  checked[$rt]=$(echo "$(now) - $start" | bc)
done
start=$(now)
for i in $(seq 1 "$checks"); do
  echo '{"source":{"initial_version":"v1"}}' | "$bin/mock-resource" check > /dev/null 2>&1
done
peer_check=$(echo "$(now) - $start" | bc)
printf 'base types: %d checks of a mock resource\n' "$checks"
for rt in host bwrap runc; do
  printf '  tributary check --runtime %-5s %8.3f s (%.1f ms each)\n' "$rt" "${checked[$rt]}" \
    "$(echo "${checked[$rt]} * 1000 / $checks" | bc -l)"
done
printf '  bare mock-resource check    %8.3f s (%.1f ms each; tributary host / bare %.2f)\n' \
  "$peer_check" "$(echo "$peer_check * 1000 / $checks" | bc -l)" \
  "$(echo "${checked[host]} / $peer_check" | bc -l)"
for rt in bwrap runc; do
  printf '  image instead of host binary, %-5s +%.1f ms per check\n' "$rt" \
    "$(echo "(${checked[$rt]} - ${checked[host]}) * 1000 / $checks" | bc -l)"
done
