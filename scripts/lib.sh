# shellcheck shell=bash
# Shared by scripts/*.sh (sourced, never run): privileges, apt, progress messages.
#
#   . "$(dirname "$0")/lib.sh"
#   as_root [VAR=VALUE ...] CMD ARGS...   CMD as root: directly when uid 0, else with sudo
#   ensure_system_packages NEED...        install what is missing (see need_package)
#   apt_install PKG...                    apt-get update (once per run) + noninteractive install
#   with_progress LABEL CMD ARGS...       run CMD with its output in a log, printing a line
#                                         every 15 s while it runs and the log's tail on failure
#   become_root "$0" "$@"                 run the whole script as root (again through sudo)
#   say MSG, debian_mirror, in_dir DIR CMD...
#
# Environment:
#   OTTER_APT_SIMULATE=1   apt-get install -s: resolve and print what would be installed,
#                          change nothing (scripts/check-install.sh uses it)
#   OTTER_APT_UPDATED=1    apt-get update already ran in this run (exported by apt_install,
#                          so scripts started by a script do not run it again)

# printf with the time, for steps that take a while.
say() { printf '[%s] %s\n' "$(date +%T)" "$*"; }

# as_root [VAR=VALUE ...] CMD ARGS...  `env` takes the assignments in both cases, so
# `as_root DEBIAN_FRONTEND=noninteractive apt-get ...` works as root and through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    env "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo env "$@"
  else
    echo "error: '$*' needs root: run this as root, or install sudo" >&2
    return 1
  fi
}

# last_line LOG  The last line of LOG with text in it, without terminal colour codes.
last_line() {
  tail -n 20 "$1" 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -v '^[[:space:]]*$' \
    | tail -n 1 | cut -c1-90
}

# with_progress LABEL CMD ARGS...
with_progress() {
  local label=$1 log start rc=0 ticker
  shift
  log=$(mktemp "${TMPDIR:-/tmp}/otter-step.XXXXXX")
  start=$(date +%s)
  (
    # The sleep is killed with the ticker, so it holds no pipe of the caller open.
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while :; do
      sleep 15 & nap=$!
      wait "$nap"
      say "  ... $label: $(( $(date +%s) - start )) s, $(last_line "$log")"
    done
  ) &
  ticker=$!
  "$@" >"$log" 2>&1 || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    echo "error: $label failed (exit $rc); last lines of its output:" >&2
    tail -n 30 "$log" >&2
  fi
  rm -f "$log"
  return "$rc"
}

# apt_install PKG...  Always goes through apt-get (no-op for installed packages).
apt_install() {
  [ $# -gt 0 ] || return 0
  local mode=() what=installing start
  if [ "${OTTER_APT_SIMULATE:-0}" = 1 ]; then mode=(-s); what="simulating install of"; fi
  start=$(date +%s)
  if [ "${OTTER_APT_UPDATED:-0}" != 1 ]; then
    say "apt-get update"
    with_progress "apt-get update" as_root apt-get update -q
    export OTTER_APT_UPDATED=1
  fi
  say "$what system packages: $*"
  # One command line for both modes: the check runs exactly what a real install runs.
  local install=(as_root DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${mode[@]}" "$@")
  if [ ${#mode[@]} -gt 0 ]; then
    local plan
    plan=$("${install[@]}" 2>&1) || {
      echo "error: ${install[*]} failed:" >&2; printf '%s\n' "$plan" | tail -n 30 >&2; return 1
    }
    say "apt would install $(printf '%s\n' "$plan" | grep -c '^Inst ') packages for: $*"
  else
    with_progress "apt-get install $*" "${install[@]}"
  fi
  say "done: $* ($(( $(date +%s) - start )) s)"
}

# need_package NEED  Succeeds when what NEED stands for is already on this machine, and
# prints the Debian package that provides it. The needs of the scripts:
#   npm  python3-venv  docker  debootstrap  chromium  curl  iproute2 (the grader hosts'
#   network namespaces in the tests)
# A user's PATH on Debian has no sbin directories, where dockerd and debootstrap live.
have() { PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1; }
need_package() {
  case $1 in
    npm)          have npm ;;
    python3-venv) python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ;;
    docker)       have dockerd && have docker ;;
    debootstrap)  have debootstrap ;;
    chromium)     have chromium ;;
    curl)         have curl ;;
    iproute2)     have ip ;;
    *) echo "error: need_package: unknown need '$1'" >&2; return 2 ;;
  esac
  local rc=$?
  case $1 in docker) echo docker.io ;; *) echo "$1" ;; esac
  return "$rc"
}

# ensure_system_packages NEED...  Installs the packages for the needs that are missing.
ensure_system_packages() {
  local need pkg missing=() rc
  for need in "$@"; do
    rc=0; pkg=$(need_package "$need") || rc=$?
    [ "$rc" = 2 ] && return 2
    [ "$rc" = 0 ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "system packages present: $*"
    return 0
  fi
  apt_install "${missing[@]}"
}

# become_root "$0" "$@"  At the top of a script that needs root throughout (debootstrap,
# chroot, mount): returns as root, or runs the script again through sudo (keeping PATH).
become_root() {
  [ "$(id -u)" = 0 ] && return 0
  command -v sudo >/dev/null 2>&1 || { echo "error: $1 needs root: run it as root, or install sudo" >&2; exit 1; }
  say "$(basename "$1") needs root: running it again with sudo"
  # PATH and RUSTUP_HOME: the caller's tools (rustc through rustup) stay usable.
  exec sudo env "PATH=$PATH" "RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}" bash "$@"
}

# debian_mirror  The Debian mirror for debootstrap: $DEBIAN_MIRROR, else the first one in
# this machine's apt sources (it may be the only one reachable), else deb.debian.org.
debian_mirror() {
  local m=${DEBIAN_MIRROR:-}
  if [ -z "$m" ]; then
    m=$({
      grep -hsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | grep -oE 'https?://[^ ]+' || true
      grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{for (i = 2; i <= NF; i++) print $i}' || true
    } | grep -E '/debian/?$' | head -n 1)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# in_dir DIR CMD ARGS...  CMD run in DIR (in a subshell), e.g. under with_progress.
in_dir() { (cd "$1" && shift && "$@"); }
