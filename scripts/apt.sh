# Sourced by the scripts that install Debian packages: `apt_install WHAT PKG…` installs the
# packages (nothing when none are given), running apt-get update at most once per script.
apt_updated=""
apt_install() {
  local what="$1"; shift
  [ $# -gt 0 ] || return 0
  say "installing Debian packages for $what: $*"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  [ -n "$apt_updated" ] || { $sudo apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
