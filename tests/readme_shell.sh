# The shell of tests/readme_harness.py: one bash for every shell block of a README run.
# Reads "run|background SCRIPT OUTPUT" lines on fd $1; answers "ok" (run) or "pid N" (background) on fd $2, and
# "exit N" when it ends: a failing block ends it (errexit). The blocks see neither descriptor, nor stdin.
ctl=$1 rep=$2
trap 'printf "exit %s\n" "$?" >&"$rep"' EXIT
while IFS=' ' read -r -u "$ctl" kind script out; do
  set -euo pipefail
  if [ "$kind" = background ]; then
    set -m  # its own process group, which Ctrl-C (SIGINT to the group) stops as a terminal would
    { trap - EXIT; source "$script"; } >"$out" 2>&1 </dev/null {ctl}<&- {rep}>&- &
    set +m
    printf 'pid %s\n' "$!" >&"$rep"
    continue
  fi
  source "$script" >"$out" 2>&1 </dev/null {ctl}<&- {rep}>&-
  set +euo pipefail
  printf 'ok\n' >&"$rep"
done
