#!/usr/bin/env bash
# The container image's build, without Docker: what CI runs to prove that the wheel the
# image installs carries everything `engine` needs at run time (compiled modules, proto
# stubs, schemas, the CLI), with nothing borrowed from the checkout.
#
# 1. the build context: the files git tracks, as .dockerignore keeps the image's
#    (no venv, no build outputs, no in-place .so files);
# 2. the builder stage: docker/build-wheel.sh, the very script the Dockerfile runs;
# 3. the runtime stage: docker/install-wheel.sh into a fresh venv, not editable;
# 4. from a directory outside the checkout: `engine validate` and `engine schema` on the
#    shipped graphs, then `engine serve graphs/` with a control token (as in the image),
#    `engine ctl health` without it until SERVING, `engine ctl status` with it, the file
#    outputs the graphs write, and SIGTERM, which must drain and exit 0.
#
#   bash docker/check-package.sh        (PYTHON picks the interpreter; default python3)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
# pip's progress stays out of the CI log; its errors, and a failed build's output, do not.
export PIP_QUIET=1
serve_pid=""
started=$SECONDS

cleanup() {
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -KILL "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { echo "check-package: $*"; }
fail() {
    echo "check-package: FAILED: $*" >&2
    if [ -f "$work/run/serve.log" ]; then
        echo "check-package: the last lines engine serve wrote:" >&2
        tail -n 30 "$work/run/serve.log" >&2
    fi
    exit 1
}
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "1/4 the build context (files git tracks)"
mkdir -p "$work/src" "$work/run"
git -C "$root" ls-files -z --cached --others --exclude-standard \
    | (cd "$root" && tar --null --files-from=- --ignore-failed-read -cf -) | tar -xf - -C "$work/src"

step "2/4 the builder stage: docker/build-wheel.sh"
"$python" -m venv "$work/build-venv"
(cd "$work/src" && PYTHON="$work/build-venv/bin/python" bash docker/build-wheel.sh "$work/dist") \
    || fail "the wheel did not build, or lacks what engine needs (see above)"

step "3/4 the runtime stage: docker/install-wheel.sh into a fresh venv"
"$python" -m venv "$work/venv"
PYTHON="$work/venv/bin/python" bash "$work/src/docker/install-wheel.sh" "$work/dist" \
    || fail "the wheel did not install, or its engine is not compiled"
engine="$work/venv/bin/engine"

step "4/4 engine from the installed wheel, outside the checkout"
cd "$work/run"
cp -R "$work/src/graphs" graphs
# Nothing of the checkout may be importable from here.
if "$work/venv/bin/python" -c 'import engine, sys; sys.exit(0 if "/venv/" in engine.__file__ else 1)'; then :; else
    fail "the engine module does not come from the installed wheel"
fi
"$engine" validate graphs/ graphs/toml/ || fail "engine validate rejected the shipped graphs"
"$engine" schema --version 2 > schema.json || fail "engine schema failed"
cmp -s schema.json "$work/src/schema/graph.v2.json" \
    || fail "engine schema --version 2 differs from the committed schema/graph.v2.json"

port="$(free_port)"
token="check-package-$RANDOM$RANDOM"
# As in the image: state in its own directory, a control token set. LISTEN_ADDRESS moves
# http_bridge's listener off its default port, which something else may hold.
HEADRACE_CONTROL_ADDRESS="127.0.0.1:$port" HEADRACE_CONTROL_TOKEN="$token" HEADRACE_STATE_DIR="$work/run/state" \
    LISTEN_ADDRESS="127.0.0.1:$(free_port)" "$engine" serve graphs/ > serve.log 2>&1 &
serve_pid=$!

# Health needs no token: exactly what the image's HEALTHCHECK and a Kubernetes probe send.
health=""
for _ in $(seq 1 120); do
    kill -0 "$serve_pid" 2>/dev/null || fail "engine serve exited before serving"
    health="$(env -u HEADRACE_CONTROL_TOKEN "$engine" ctl --address "127.0.0.1:$port" --timeout 2 health 2>/dev/null)" && break
    sleep 0.5
done
[ "$health" = SERVING ] || fail "engine ctl health never answered SERVING (last answer: '${health:-none}')"
step "engine ctl health: $health"

status="$(HEADRACE_CONTROL_TOKEN="$token" "$engine" ctl --address "127.0.0.1:$port" status)" \
    || fail "engine ctl status failed"
for graph in alerts durable_orders http_bridge orders_etl quickstart sensor_scores tail_errors; do
    grep -q "$graph" <<< "$status" || fail "engine ctl status does not list $graph:"$'\n'"$status"
done
if HEADRACE_CONTROL_TOKEN="" "$engine" ctl --address "127.0.0.1:$port" status > /dev/null 2>&1; then
    fail "engine ctl status answered without the token"
fi
step "engine ctl status: 7 graphs; refused without the token"

# The file graphs' outputs (relative paths: the directory serve runs in).
for output in out/orders_clean.jsonl out/orders_durable.jsonl; do
    for _ in $(seq 1 60); do
        [ -s "$output" ] && break
        sleep 0.5
    done
    [ -s "$output" ] || fail "$output was not written"
done
[ -d state/edges ] || fail "the durable edges' state directory (state/edges) was not created"
rss="$(awk '/^VmHWM/ {print int($2 / 1024) " MiB"}' "/proc/$serve_pid/status" 2>/dev/null || true)"
step "outputs written: $(wc -l < out/orders_clean.jsonl) clean orders, $(wc -l < out/orders_durable.jsonl) durable; peak RSS ${rss:-unknown}"

kill -TERM "$serve_pid"
code=0
wait "$serve_pid" || code=$?
serve_pid=""
[ "$code" -eq 0 ] || fail "engine serve exited $code after SIGTERM, not 0"
step "SIGTERM: drained, exit 0"
step "passed in $((SECONDS - started)) s"
