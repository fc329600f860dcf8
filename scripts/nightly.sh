#!/usr/bin/env bash
# Nightly: every plan against the virtual vehicle on vcan0, in real time, with reports.
#
#   scripts/nightly.sh                                   # every test_plans/*.yaml on vcan0
#   NIGHTLY_PLANS="heihe_cold_charge.yaml" scripts/nightly.sh
#   NIGHTLY_PLAN_LIST=nightly.list scripts/nightly.sh    # plans with options of their own
#
# For each plan: start `python -m virtual_bus --realtime` on the channel as a process (group) of
# its own, with the plan's vehicle settings (ambient, start temperature, SOC, seed); wait until it
# is heard on the bus; `bench run PLAN --interface socketcan --channel vcan0 --out RUN_DIR`; stop
# the vehicle. A fresh vehicle per plan, because a Heihe plan needs a pack soaked at -30 °C and a
# Turpan plan one at +45 °C: one vehicle for all would carry the last plan's state into the next.
# Real-time runs take their simulated duration in wall time (about an hour per site plan).
#
# Before the plans, the deep tests `make test` leaves out (NIGHTLY_TESTS=0 skips them): the
# `slow` ones (`pytest -m slow`: the site-plan fault matrix, the DBC corpus at 1,024 payloads per
# branch, whole case plans), then the oracle (tests/oracle) with NIGHTLY_ORACLE_EXAMPLES examples
# per kind instead of make test's 2,000. Their result is one more line of the summary.
#
# Then: run directories older than NIGHTLY_KEEP_DAYS are pruned, `bench runs` prints the index,
# and a one-line-per-plan summary goes to stdout and $NIGHTLY_OUT/nightly-<stamp>.txt.
#
# Exit status: 0 every plan and test passed; otherwise the worst of the `bench run` exit codes
# (1 a check failed, 2 a plan could not be loaded, 3 aborted or interface error) and 1 for a
# failed deep test; 4 the set-up failed (no vcan, the vehicle never came up). No process outlives the script: on exit, Ctrl-C or SIGTERM the run in
# progress is stopped first (it sends the safe state while the vehicle still listens), then the
# vehicle's process group.
#
# Settings (environment):
#   NIGHTLY_PLAN_DIR      folder of the plans                        [test_plans]
#   NIGHTLY_PLANS         plan files (space-separated, relative to the folder)  [every *.yaml]
#   NIGHTLY_PLAN_LIST     file, one plan a line: PLAN [BENCH RUN OPTIONS] [-- VEHICLE OPTIONS]
#                         (# comments); overrides NIGHTLY_PLANS
#   NIGHTLY_INTERFACE     python-can interface                       [socketcan]
#   NIGHTLY_CHANNEL       channel                                    [vcan0]
#   NIGHTLY_RUN_OPTS      options for every `bench run` (e.g. "--bench bench.toml")
#   NIGHTLY_VEHICLE_OPTS  options for every vehicle (e.g. "--inject noise:BMS_Cells.MinCellVolt=0.01")
#   NIGHTLY_OUT           where run directories go                   [reports]
#   NIGHTLY_KEEP_DAYS     prune run directories older than this many days   [14]
#   NIGHTLY_PLAN_TIMEOUT  seconds one plan may take before it is stopped    [10800]
#   NIGHTLY_VEHICLE_WAIT  seconds to wait for the vehicle to be heard       [120]
#   NIGHTLY_STOP_GRACE    seconds a stopped run gets for safe state and report before SIGKILL [30]
#   NIGHTLY_PYTHON        the Python with bench installed            [.venv/bin/python]
#   NIGHTLY_TESTS         1: run the deep tests first; 0: plans only [1]
#   NIGHTLY_ORACLE_EXAMPLES  oracle examples per check kind          [20000]
set -uo pipefail

cd "$(dirname "$0")/.."
readonly ROOT=$PWD
PY=${NIGHTLY_PYTHON:-$ROOT/.venv/bin/python}
BENCH=$(dirname "$PY")/bench
PLAN_DIR=${NIGHTLY_PLAN_DIR:-test_plans}
INTERFACE=${NIGHTLY_INTERFACE:-socketcan}
CHANNEL=${NIGHTLY_CHANNEL:-vcan0}
OUT=${NIGHTLY_OUT:-reports}
KEEP_DAYS=${NIGHTLY_KEEP_DAYS:-14}
PLAN_TIMEOUT=${NIGHTLY_PLAN_TIMEOUT:-10800}
VEHICLE_WAIT=${NIGHTLY_VEHICLE_WAIT:-120}
STOP_GRACE=${NIGHTLY_STOP_GRACE:-30}
TESTS=${NIGHTLY_TESTS:-1}
ORACLE_EXAMPLES=${NIGHTLY_ORACLE_EXAMPLES:-20000}
STAMP=$(date +%Y%m%d-%H%M%S)
prog=nightly

say() { echo "$prog: $(date +%H:%M:%S) $*"; }
die() {
    echo "$prog: error: $*" >&2
    exit 4
}

[[ $KEEP_DAYS =~ ^[0-9]+$ ]] || die "NIGHTLY_KEEP_DAYS must be a whole number of days, got '$KEEP_DAYS'"
[[ $TESTS =~ ^[01]$ ]] || die "NIGHTLY_TESTS must be 0 or 1, got '$TESTS'"
for setting in PLAN_TIMEOUT VEHICLE_WAIT STOP_GRACE ORACLE_EXAMPLES; do
    [[ ${!setting} =~ ^[0-9]+$ ]] || die "NIGHTLY_$setting must be whole seconds, got '${!setting}'"
done
[[ -x $PY ]] || die "no Python at $PY (make test bootstraps .venv; or set NIGHTLY_PYTHON)"
[[ -x $BENCH ]] || die "no bench command next to $PY (pip install -e . in that environment)"
[[ -d $PLAN_DIR ]] || die "no plan folder $PLAN_DIR"
mkdir -p "$OUT" || die "cannot create $OUT"

# -- processes: started in groups of their own, stopped as groups -------------------------------

vehicle_pid=""
run_pid=""

stop_group() { # PID SIGNAL_FIRST GRACE_SECONDS: signal the group, wait, then SIGKILL it
    local pid=$1 first=$2 grace=$3 waited=0
    [[ -n $pid ]] || return 0
    kill "-$first" -- "-$pid" 2>/dev/null || return 0
    while kill -0 -- "-$pid" 2>/dev/null && ((waited < grace * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    # The run first: on SIGTERM it sends the safe state and closes its log, while the vehicle
    # still listens. Then the vehicle.
    stop_group "$run_pid" TERM "$STOP_GRACE"
    run_pid=""
    stop_group "$vehicle_pid" TERM 5
    vehicle_pid=""
}

interrupted() {
    say "interrupted ($1): stopping the run and the vehicle"
    cleanup
    exit 3
}

trap cleanup EXIT
trap 'interrupted INT' INT
trap 'interrupted TERM' TERM
trap 'interrupted HUP' HUP

# -- plans ----------------------------------------------------------------------------------------

plans=()     # plan paths
run_opts=()  # per plan: extra bench run options (one string each)
veh_opts=()  # per plan: extra vehicle options

add_plan() { # PLAN RUN_OPTS VEHICLE_OPTS
    local plan=$1
    [[ $plan = /* ]] || plan=$PLAN_DIR/$plan
    [[ -f $plan ]] || die "no plan $plan"
    plans+=("$plan")
    run_opts+=("$2")
    veh_opts+=("$3")
}

if [[ -n ${NIGHTLY_PLAN_LIST:-} ]]; then
    [[ -f $NIGHTLY_PLAN_LIST ]] || die "no plan list $NIGHTLY_PLAN_LIST"
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%%#*}
        [[ -n ${line// /} ]] || continue
        read -r plan rest <<<"$line"
        if [[ " $rest " == *" -- "* ]]; then
            add_plan "$plan" "${rest%%--*}" "${rest#*--}"
        else
            add_plan "$plan" "$rest" ""
        fi
    done <"$NIGHTLY_PLAN_LIST"
elif [[ -n ${NIGHTLY_PLANS:-} ]]; then
    for plan in $NIGHTLY_PLANS; do add_plan "$plan" "" ""; done
else
    for plan in "$PLAN_DIR"/*.yaml; do
        [[ -e $plan ]] && add_plan "$plan" "" ""
    done
fi
((${#plans[@]} > 0)) || die "no plans to run in $PLAN_DIR"

# -- one plan -------------------------------------------------------------------------------------

vehicle_args() { # PLAN: the plan's vehicle settings as `python -m virtual_bus` options
    "$PY" - "$1" <<'EOF'
import sys
from pathlib import Path

from bench.errors import BenchError
from bench.plan import load_plan

try:
    plan = load_plan(Path(sys.argv[1]))
except BenchError as exc:
    sys.exit(str(exc))  # one line, the loader's file:line:column
vehicle = plan.vehicle
print(f"--ambient {vehicle.ambient_c} --initial-temp {vehicle.initial_temp} "
      f"--soc {vehicle.soc} --seed {plan.seed or 0}")
EOF
}

wait_heard() { # wait until the vehicle's frames are on the bus (its start takes a few seconds)
    "$PY" - "$INTERFACE" "$CHANNEL" "$VEHICLE_WAIT" <<'EOF'
import sys
import time

import can

bus = can.Bus(interface=sys.argv[1], channel=sys.argv[2])
end = time.monotonic() + float(sys.argv[3])
try:
    while time.monotonic() < end:
        if bus.recv(timeout=0.5) is not None:
            sys.exit(0)
finally:
    bus.shutdown()
sys.exit(1)
EOF
}

result_code=0
result_dir=-

run_one() { # INDEX: run plans[INDEX] against a fresh vehicle; sets result_code, result_dir
    # Runs in this shell, not a subshell: the traps must see vehicle_pid and run_pid.
    local index=$1 plan=${plans[$1]} stem settings run_dir
    stem=$(basename "$plan" .yaml)
    run_dir=$OUT/$(date +%Y%m%d-%H%M%S)-$stem
    result_code=0
    result_dir=-
    if ! settings=$(vehicle_args "$plan" 2>&1); then
        say "$stem: plan does not load: $settings" >&2
        result_code=2
        return
    fi
    # shellcheck disable=SC2086  # options are word lists on purpose
    setsid "$PY" -m virtual_bus --realtime --interface "$INTERFACE" --channel "$CHANNEL" \
        $settings ${NIGHTLY_VEHICLE_OPTS:-} ${veh_opts[$index]} \
        >"$OUT/.vehicle-$stem.log" 2>&1 &
    vehicle_pid=$!
    if ! wait_heard; then
        say "$stem: the vehicle was not heard on $INTERFACE:$CHANNEL within $VEHICLE_WAIT s:" >&2
        tail -n 5 "$OUT/.vehicle-$stem.log" >&2
        stop_group "$vehicle_pid" TERM 5
        vehicle_pid=""
        result_code=4
        return
    fi
    say "$stem: vehicle up ($settings), running the plan → $run_dir"
    # shellcheck disable=SC2086
    setsid timeout --signal=TERM --kill-after="$STOP_GRACE" "$PLAN_TIMEOUT" \
        "$BENCH" run "$plan" --interface "$INTERFACE" --channel "$CHANNEL" \
        --out "$run_dir" --plain ${NIGHTLY_RUN_OPTS:-} ${run_opts[$index]} &
    run_pid=$!
    wait "$run_pid"
    result_code=$?
    run_pid=""
    ((result_code == 124)) && result_code=3 # timed out: the runner got SIGTERM and aborted
    result_dir=$run_dir
    stop_group "$vehicle_pid" TERM 5
    vehicle_pid=""
}

# -- the night ------------------------------------------------------------------------------------

say "${#plans[@]} plan(s) on $INTERFACE:$CHANNEL, run directories in $OUT"
summary=$OUT/nightly-$STAMP.txt
worst=0
: >"$summary"

if ((TESTS)); then
    # The deep variants make test leaves out; -m replaces pyproject's -m 'not slow'.
    say "deep tests: pytest -m slow, then tests/oracle at $ORACLE_EXAMPLES examples per kind"
    tests_log=$OUT/.nightly-tests-$STAMP.log
    "$PY" -m pytest -q -p no:cacheprovider -n auto -m slow tests >"$tests_log" 2>&1
    slow_code=$?
    # pyproject's 300 s per test is a hang guard sized for 2,000 examples; 20,000 take ~10x
    BENCH_ORACLE_EXAMPLES=$ORACLE_EXAMPLES "$PY" -m pytest -q -p no:cacheprovider -n auto \
        --timeout=7200 tests/oracle >>"$tests_log" 2>&1
    oracle_code=$?
    if ((slow_code == 0 && oracle_code == 0)); then
        line="deep tests pass ($tests_log)"
    else
        line="deep tests FAIL (slow exit $slow_code, oracle exit $oracle_code; $tests_log)"
        worst=1
    fi
    say "$line"
    echo "$line" >>"$summary"
fi
for index in "${!plans[@]}"; do
    run_one "$index"
    code=$result_code
    case $code in
        0) verdict=pass ;;
        1) verdict=FAIL ;;
        2) verdict="PLAN ERROR" ;;
        4) verdict="SET-UP ERROR" ;;
        *) verdict=ABORTED ;;
    esac
    line="$(basename "${plans[$index]}") $verdict (exit $code) $result_dir"
    say "$line"
    echo "$line" >>"$summary"
    ((code > worst)) && worst=$code
done

# Prune run directories (the bench's own naming only) older than NIGHTLY_KEEP_DAYS.
pruned=0
while IFS= read -r -d '' old; do
    rm -rf -- "$old" && pruned=$((pruned + 1))
done < <(find "$OUT" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9]{8}-[0-9]{6}-[^/]+' -mmin "+$((KEEP_DAYS * 1440))" -print0)
find "$OUT" -mindepth 1 -maxdepth 1 -type f -name 'nightly-*.txt' -mmin "+$((KEEP_DAYS * 1440))" \
    -delete
say "pruned $pruned run director$( ((pruned == 1)) && echo y || echo ies) older than $KEEP_DAYS days"
"$BENCH" runs "$OUT" || true
say "done: worst exit code $worst (summary in $summary)"
exit "$worst"
