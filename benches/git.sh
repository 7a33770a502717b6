#!/usr/bin/env bash
# Benchmark: git-resource check/in against the git CLI doing the same work, in one run.
#   A repository of COMMITS commits made with `git fast-import` (each changes counter.txt;
#   only the first one adds docs/readme), served by `git daemon` on 127.0.0.1.
#   cold check       ours: check, empty cache   git: clone --bare --single-branch + rev-list -1
#   warm check       one new commit since the given version
#                    ours: check {version}      git: fetch + rev-list --first-parent V~1..HEAD
#   warm vs peer     ours against the official resource's commands for that check (its jq
#                    reads of the request, fetch, reset, rev-list pipeline with ci-skip)
#   warm (path)      the same against the repository's path (no server process to spawn)
#   check paths      ours: check paths=[docs]   git: rev-list --first-parent -1 HEAD -- docs
#                    (warm cache; the only match is the first commit: a walk of every commit)
#   in full          ours: in                   git: clone --single-branch
#   in depth 1       ours: in depth=1           git: clone --depth 1
# Targets (issue 3): warm check < 50 ms and within 2x of git; in depth 1 within 2x of git;
# peak RSS of a check < 64 MB. Spec (git.md): warm vs peer < 0.10x.
# Prints best wall time of REPS runs, peak RSS, and the ratio ours/git.
# Full run: benches/git.sh (20,000 commits, release build).
# SMOKE=1: 300 commits with the debug build, in seconds (CI does that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then
  commits=${COMMITS:-300} reps=${REPS:-1}
  cargo build -q -p git-resource
  bin=$PWD/target/debug/git-resource
else
  commits=${COMMITS:-20000} reps=${REPS:-5}
  cargo build -q --release -p git-resource
  bin=$PWD/target/release/git-resource
fi
for tool in git /usr/bin/time jq; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
[ -x "$(git --exec-path)/git-daemon" ] || { echo "bench: git-daemon is missing (apt-get install git-daemon-run)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/git-bench.XXXXXX")
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export GIT_CONFIG_NOSYSTEM=1 HOME=$work/home GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
mkdir -p "$HOME"

# The repository: COMMITS commits in one fast-import run.
git init -q --bare --initial-branch=main "$work/repos/r.git"
awk -v n="$commits" 'BEGIN {
  for (i = 1; i <= n; i++) {
    msg = "commit " i; content = i "\n"
    printf "commit refs/heads/main\nmark :%d\n", i
    printf "author bench <bench@example.com> %d +0000\n", 1700000000 + 60 * i
    printf "committer bench <bench@example.com> %d +0000\n", 1700000000 + 60 * i
    printf "data %d\n%s\n", length(msg), msg
    if (i > 1) printf "from :%d\n", i - 1
    printf "M 100644 inline counter.txt\ndata %d\n%s\n", length(content), content
    if (i == 1) printf "M 100644 inline docs/readme\ndata 6\nhello\n\n"
    printf "\n"
  }
}' | git -C "$work/repos/r.git" fast-import --quiet
git -C "$work/repos/r.git" gc -q

port=$((20000 + RANDOM % 20000))
git daemon --reuseaddr --export-all --base-path="$work/repos" --listen=127.0.0.1 --port=$port \
  "$work/repos" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do git ls-remote "git://127.0.0.1:$port/r.git" >/dev/null 2>&1 && break; sleep 0.05; done
uri="git://127.0.0.1:$port/r.git"

# measure LABEL SETUP CMD...: runs SETUP then CMD (stdin from $work/stdin) REPS times, keeps
# the best wall time and the peak RSS of that run in $work/LABEL as "seconds rss_kb".
measure() {
  local label=$1 setup=$2; shift 2
  local best="" best_rss=""
  for _ in $(seq "$reps"); do
    eval "$setup"
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" <"$work/stdin" >"$work/stdout" 2>"$work/stderr" \
      || { echo "bench: $label failed:" >&2; cat "$work/stderr" >&2; exit 1; }
    read -r wall rss <"$work/time"
    if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
      best=$wall best_rss=$rss
    fi
  done
  echo "$best $best_rss" >"$work/$label"
}

# Precise enough below 10 ms: /usr/bin/time prints centiseconds, so time short runs in-process.
measure_ms() {
  local label=$1 setup=$2; shift 2
  local best=""
  for _ in $(seq "$reps"); do
    eval "$setup"
    local start end
    start=$(date +%s%N)
    "$@" <"$work/stdin" >"$work/stdout" 2>"$work/stderr" \
      || { echo "bench: $label failed:" >&2; cat "$work/stderr" >&2; exit 1; }
    end=$(date +%s%N)
    local ms=$(( (end - start) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  /usr/bin/time -f "%M" -o "$work/time" "$@" <"$work/stdin" >/dev/null 2>&1
  echo "$best $(cat "$work/time")" >"$work/$label"
}

ours_env=(env TMPDIR="$work/tmp")
mkdir -p "$work/tmp"
: >"$work/stdin"

# cold check
echo "{\"source\":{\"uri\":\"$uri\",\"branch\":\"main\"}}" >"$work/check.json"
cp "$work/check.json" "$work/stdin"
measure ours_cold 'rm -rf "$work/tmp/git-resource-repo-cache"' "${ours_env[@]}" "$bin" check
measure git_cold 'rm -rf "$work/cli-cache"' sh -c \
  "git clone -q --bare --single-branch --branch main '$uri' '$work/cli-cache' && git -C '$work/cli-cache' rev-list --first-parent --max-count=1 HEAD"

# warm check: each run finds exactly one new commit since the given version (a new object
# the cache lacks), as an incremental check in a pipeline does.
tree=$(git -C "$work/repos/r.git" rev-parse 'main^{tree}')
advance='prev=$(git -C "$work/repos/r.git" rev-parse main)
  echo "$prev" >"$work/prev"
  new=$(git -C "$work/repos/r.git" commit-tree "$tree" -p "$prev" -m "more $(date +%s%N)")
  git -C "$work/repos/r.git" update-ref refs/heads/main "$new"
  echo "{\"source\":{\"uri\":\"$uri\",\"branch\":\"main\"},\"version\":{\"ref\":\"$prev\"}}" >"$work/stdin"'
eval "$advance"
"${ours_env[@]}" "$bin" check <"$work/stdin" >"$work/answer" 2>/dev/null
[ "$(jq length "$work/answer")" = 2 ] || { echo "bench: warm check answered $(cat "$work/answer")" >&2; exit 1; }
measure_ms ours_warm "$advance" "${ours_env[@]}" "$bin" check
[ "$(jq length "$work/stdout")" = 2 ] || { echo "bench: warm check answered $(cat "$work/stdout")" >&2; exit 1; }
git -C "$work/cli-cache" fetch -q "$uri" +main:main
measure_ms git_warm "$advance" sh -c \
  "git -C '$work/cli-cache' fetch -q '$uri' +main:main && git -C '$work/cli-cache' rev-list --first-parent \$(cat '$work/prev')~1..main"
[ "$(wc -l <"$work/stdout")" = 2 ] || { echo "bench: git rev-list answered $(cat "$work/stdout")" >&2; exit 1; }
new=$(git -C "$work/repos/r.git" rev-parse main)

# The official resource's incremental check: its ~25 jq reads of the request, then its git
# commands for this case (fetch, reset, first-parent rev-list with the ci-skip filter).
git clone -q --bare --single-branch --branch main "$uri" "$work/peer-cache"
cat >"$work/peer-check.sh" <<'PEER'
payload=$(cat)
for _ in $(seq 25); do jq -r '.source.uri // ""' <<<"$payload" >/dev/null; done
ref=$(jq -r '.version.ref // ""' <<<"$payload")
cd "$PEER_CACHE"
git fetch -q origin main -f
git reset -q --soft FETCH_HEAD
git cat-file -e "$ref"
git rev-list --all --first-parent "$ref~1..HEAD" \
  | git rev-list --stdin --date-order --grep='\[ci\sskip\]' --grep='\[skip\sci\]' --invert-grep --first-parent --no-walk=unsorted \
  | git rev-list --stdin --date-order --first-parent --no-walk=unsorted --reverse \
  | jq -R . | jq -s 'map({ref: .})'
PEER
measure_ms peer_warm "$advance" env PEER_CACHE="$work/peer-cache" bash "$work/peer-check.sh"
[ "$(jq length "$work/stdout")" = 2 ] || { echo "bench: peer pipeline answered $(cat "$work/stdout")" >&2; exit 1; }

# The same warm check against a local path (no server process per connection).
local_uri="$work/repos/r.git"
advance_local="${advance//\$uri/\$local_uri}"
echo "{\"source\":{\"uri\":\"$local_uri\",\"branch\":\"main\"}}" >"$work/stdin"
"${ours_env[@]}" "$bin" check <"$work/stdin" >/dev/null 2>&1
git clone -q --bare --single-branch --branch main "$local_uri" "$work/cli-local"
measure_ms ours_warm_local "$advance_local" "${ours_env[@]}" "$bin" check
[ "$(jq length "$work/stdout")" = 2 ] || { echo "bench: local warm check answered $(cat "$work/stdout")" >&2; exit 1; }
measure_ms git_warm_local "$advance_local" sh -c \
  "git -C '$work/cli-local' fetch -q '$local_uri' +main:main && git -C '$work/cli-local' rev-list --first-parent \$(cat '$work/prev')~1..main"
new=$(git -C "$work/repos/r.git" rev-parse main)

# check with paths (warm cache, a walk of the whole history)
echo "{\"source\":{\"uri\":\"$uri\",\"branch\":\"main\",\"paths\":[\"docs\"]}}" >"$work/stdin"
"${ours_env[@]}" "$bin" check <"$work/stdin" >/dev/null 2>&1 # warm the paths cache key
measure ours_paths ':' "${ours_env[@]}" "$bin" check
measure git_paths ':' sh -c \
  "git -C '$work/cli-cache' fetch -q '$uri' +main:main && git -C '$work/cli-cache' rev-list --first-parent --max-count=1 main -- docs >/dev/null"

# in: full and depth 1
echo "{\"source\":{\"uri\":\"$uri\",\"branch\":\"main\"},\"version\":{\"ref\":\"$new\"}}" >"$work/stdin"
measure ours_in 'rm -rf "$work/dest"' "${ours_env[@]}" "$bin" in "$work/dest"
measure git_in 'rm -rf "$work/dest"' git clone -q --single-branch --branch main "$uri" "$work/dest"
echo "{\"source\":{\"uri\":\"$uri\",\"branch\":\"main\"},\"version\":{\"ref\":\"$new\"},\"params\":{\"depth\":1}}" >"$work/stdin"
measure ours_in1 'rm -rf "$work/dest"' "${ours_env[@]}" "$bin" in "$work/dest"
measure git_in1 'rm -rf "$work/dest"' git clone -q --depth 1 --single-branch --branch main "$uri" "$work/dest"

echo "git-resource benchmark: $commits commits over git://, best of $reps ($(basename "$(dirname "$bin")") build)"
printf '%-14s %12s %12s %12s %12s %8s\n' case ours ours-rss git git-rss ratio
row() {
  local label=$1 ours=$2 theirs=$3 unit=$4
  read -r ot orss <"$work/$ours"
  read -r gt grss <"$work/$theirs"
  local ratio
  ratio=$(awk -v a="$ot" -v b="$gt" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  printf '%-14s %10s%-2s %9d KB %10s%-2s %9d KB %7sx\n' "$label" "$ot" "$unit" "$orss" "$gt" "$unit" "$grss" "$ratio"
}
row "cold check" ours_cold git_cold s
row "warm check" ours_warm git_warm ms
row "warm vs peer" ours_warm peer_warm ms
row "warm (path)" ours_warm_local git_warm_local ms
row "check paths" ours_paths git_paths s
row "in full" ours_in git_in s
row "in depth 1" ours_in1 git_in1 s
