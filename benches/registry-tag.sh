#!/usr/bin/env bash
# Benchmark: registry-tag-resource `check` over many tags from the fixtures, in one run.
#   hub:      Docker Hub listing API, TAGS tags over TAGS/100 pages of 100 (newest first)
#   registry: OCI tags/list with Link pagination, same pages, vs `skopeo list-tags` (peer)
#   flat:     the same checks over TAGS/10 tags, to show CPU and memory grow no faster
#             than the answer
# Target (spec): 10,000 tags over 100 pages check in well under a second of CPU.
# Prints wall time, CPU time (user+sys), peak RSS, and ratios ours/skopeo.
# Full run: benches/registry-tag.sh (10,000 tags, release build).
# SMOKE=1: 500 tags with the debug build, in seconds (CI does that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then
  tags=${TAGS:-500} reps=${REPS:-1}
  cargo build -q -p registry-tag-resource --example tag-fixtures
  cargo build -q -p registry-tag-resource
  bin=$PWD/target/debug/registry-tag-resource
  fixtures=$PWD/target/debug/examples/tag-fixtures
else
  tags=${TAGS:-10000} reps=${REPS:-5}
  cargo build -q --release -p registry-tag-resource --example tag-fixtures
  cargo build -q --release -p registry-tag-resource
  bin=$PWD/target/release/registry-tag-resource
  fixtures=$PWD/target/release/examples/tag-fixtures
fi
for tool in skopeo python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/registry-tag-bench.XXXXXX")
fixture_pids=()
cleanup() {
  for pid in "${fixture_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start_fixtures COUNT NAME: serves COUNT tags; sets NAME_hub, NAME_registry, NAME_host.
start_fixtures() {
  local count=$1 name=$2
  mkfifo "$work/$name.in"
  "$fixtures" "$count" <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
  fixture_pids+=($!)
  exec {fd}>"$work/$name.in" # holds the fixture's stdin open until the script exits
  for _ in $(seq 600); do [ "$(wc -l <"$work/$name.out")" -ge 3 ] && break; sleep 0.05; done
  [ "$(wc -l <"$work/$name.out")" -ge 3 ] || { cat "$work/$name.err" >&2; exit 1; }
  mapfile -t lines <"$work/$name.out"
  printf -v "${name}_hub" '%s' "${lines[0]}"
  printf -v "${name}_registry" '%s' "${lines[1]}"
  printf -v "${name}_host" '%s' "${lines[2]}"
}

# measure LABEL EXPECT STDIN CMD...: runs CMD <STDIN REPS times (stdout must hold EXPECT
# entries), keeps the best wall time; writes "wall cpu rss_kb" into $work/LABEL.
measure() {
  local label=$1 expect=$2 input=$3; shift 3
  local best=""
  for _ in $(seq "$reps"); do
    python3 - "$work/time" "$input" "$work/stdout" "$work/stderr" "$@" <<'PY' \
      || { echo "bench: $label failed:" >&2; cat "$work/stderr" >&2; exit 1; }
import resource, subprocess, sys, time
out, stdin, stdout, stderr, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
# CPU from our own rusage (microseconds); peak RSS from GNU time, whose small footprint is
# all a forked child carries before exec (a forked python would count as tens of MB).
rss_file = out + ".rss"
# The first fork of a fresh python costs ~45 ms of child CPU: pay it before measuring.
subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file, "/bin/true"])
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.perf_counter()
with open(stdin) as i, open(stdout, "w") as o, open(stderr, "w") as e:
    code = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd,
                          stdin=i, stdout=o, stderr=e).returncode
wall = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
rss = open(rss_file).read().split()[-1]
with open(out, "w") as f:
    f.write(f"{wall:.4f} {user:.4f} {system:.4f} {rss}\n")
sys.exit(code)
PY
    local got
    got=$(python3 - "$work/stdout" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
print(len(answer["Tags"] if isinstance(answer, dict) else answer))
PY
)
    [ "$got" = "$expect" ] || { echo "bench: $label answered $got tags, expected $expect" >&2; exit 1; }
    read -r wall user sys rss <"$work/time"
    local cpu; cpu=$(python3 -c "print(f'{$user + $sys:.3f}')")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $wall < ${best%% *} else 1)"; then
      best="$wall $cpu $rss"
    fi
  done
  echo "$best" >"$work/$label"
  read -r wall cpu rss <"$work/$label"
  printf '%-44s %8ss wall %8ss cpu %8s MB peak RSS\n' "$label" "$wall" "$cpu" \
    "$(python3 -c "print(f'{$rss / 1024:.1f}')")"
}

check_request() { # uri pages [extra source JSON] -> request JSON
  printf '{"source":{"uri":"%s","pages":%s,"tags_per_page":100%s}}' "$1" "$2" "${3:-}"
}

small=$((tags / 10))
start_fixtures "$tags" big
start_fixtures "$small" small
pages=$(((tags + 99) / 100))
small_pages=$(((small + 99) / 100))
echo "registry-tag check: $tags tags over $pages pages of 100 (best of $reps)"

check_request "$big_hub" "$pages" >"$work/hub.json"
check_request "$big_registry" "$pages" >"$work/registry.json"
check_request "$small_hub" "$small_pages" >"$work/hub-small.json"
check_request "$small_registry" "$small_pages" >"$work/registry-small.json"
# Tags are "A.B.C" with C = i % 10: this keeps one in a hundred (A.B0.0 … A.B0.9 → A.x0.0).
check_request "$big_hub" "$pages" ',"regexp":"^[0-9]+[.][0-9]*0[.]0$"' >"$work/hub-filtered.json"

measure "ours hub ($tags tags)" "$tags" "$work/hub.json" "$bin" check
measure "ours registry ($tags tags)" "$tags" "$work/registry.json" "$bin" check
measure "skopeo list-tags ($tags tags)" "$tags" /dev/null \
  skopeo list-tags --tls-verify=false "docker://$big_host/team/app"
measure "ours hub ($small tags)" "$small" "$work/hub-small.json" "$bin" check
measure "ours registry ($small tags)" "$small" "$work/registry-small.json" "$bin" check
measure "ours hub ($tags listed, $((tags / 100)) kept)" "$((tags / 100))" "$work/hub-filtered.json" "$bin" check

ratio() { python3 -c "
a = open('$work/$1').read().split(); b = open('$work/$2').read().split()
print(f'{float(a[$3]) / max(float(b[$3]), 0.005):.2f}x')"; }
echo
echo "ours/skopeo over the registry:  wall $(ratio "ours registry ($tags tags)" "skopeo list-tags ($tags tags)" 0)," \
  "cpu $(ratio "ours registry ($tags tags)" "skopeo list-tags ($tags tags)" 1)," \
  "peak RSS $(ratio "ours registry ($tags tags)" "skopeo list-tags ($tags tags)" 2)"
echo "growth ${small}→${tags} tags (10× the tags): hub cpu $(ratio "ours hub ($tags tags)" "ours hub ($small tags)" 1)," \
  "hub RSS $(ratio "ours hub ($tags tags)" "ours hub ($small tags)" 2)," \
  "registry RSS $(ratio "ours registry ($tags tags)" "ours registry ($small tags)" 2)"
echo "listing $tags but keeping $((tags / 100)): peak RSS" \
  "$(ratio "ours hub ($tags listed, $((tags / 100)) kept)" "ours hub ($small tags)" 2) of the $small-tag check"
cpu=$(cut -d' ' -f2 "$work/ours hub ($tags tags)")
python3 -c "import sys; sys.exit(0 if $cpu < 1.0 else 1)" \
  || { echo "bench: hub check took ${cpu}s of CPU (target: well under 1s)" >&2; [ "${SMOKE:-}" = 1 ] || exit 1; }
