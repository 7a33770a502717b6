#!/usr/bin/env bash
# Benchmark: `tributary validate` (parse, anchors, vars, typed model, validation) on a generated
# pipeline, against PyYAML's C loader merely parsing the same file (fly is not installable here,
# so the peer is the fastest common YAML loader). Prints both times and their ratio.
# SMOKE=1 runs a tiny pipeline with the debug build in seconds (CI does that).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SMOKE:-}" = 1 ]; then
  mb=0.2 runs=1
  cargo build -q -p tributary
  bin=target/debug/tributary
else
  mb=${MB:-10} runs=${RUNS:-3}
  cargo build -q --release -p tributary
  bin=target/release/tributary
fi

py=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml; yaml.CSafeLoader' 2>/dev/null; then
    py=$candidate
    break
  fi
done
if [ -z "$py" ]; then
  echo "bench: the peer needs PyYAML with its C loader (apt-get install python3-yaml)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pipeline="$work/pipeline.yml"

"$py" - "$pipeline" "$mb" <<'PY'
import sys
path, mb = sys.argv[1], float(sys.argv[2])
target = int(mb * 1024 * 1024)
res, jobs, n, size = ["resources:\n"], ["jobs:\n"], 0, 0
while size < target:
    r = f"- name: repo-{n}\n  type: git\n  source:\n    uri: https://git.example.org/team/project-{n}.git\n    branch: main\n"
    passed = f"\n    passed: [job-{n-1}]" if n else ""
    j = (f"- name: job-{n}\n  plan:\n  - get: repo-{n}\n    trigger: true\n  - get: shared{passed}\n    resource: repo-0\n"
         f"  - task: build\n    config:\n      platform: linux\n      inputs: [{{name: repo-{n}}}]\n"
         f"      params: {{N: {n}, LABEL: \"build number {n}\"}}\n      run: {{path: sh, args: [-ec, \"make -C repo-{n}\"]}}\n")
    res.append(r); jobs.append(j); size += len(r) + len(j); n += 1
open(path, "w").write("".join(res) + "".join(jobs))
PY

best() { # best wall time in seconds of "$@" over $runs runs
  "$py" -c '
import subprocess, sys, time
runs, cmd, best = int(sys.argv[1]), sys.argv[2:], None
for _ in range(runs):
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.perf_counter() - t0
    best = t if best is None else min(best, t)
print(f"{best:.4f}")
' "$runs" "$@"
}

ours=$(best "$bin" validate "$pipeline")
"$bin" validate "$pipeline" 2>&1 | tail -1 | grep -q ": valid (" || { echo "bench: tributary rejected the pipeline" >&2; exit 1; }
peer=$(best "$py" -c 'import sys, yaml; yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)' "$pipeline")
bytes=$(stat -c %s "$pipeline")
printf 'pipeline: %s bytes\n' "$bytes"
printf 'tributary validate:       %.3fs\n' "$ours"
printf 'pyyaml CSafeLoader parse: %.3fs\n' "$peer"
"$py" -c 'import sys; print(f"ratio tributary/pyyaml:   {float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$ours" "$peer"
