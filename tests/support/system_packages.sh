#!/bin/sh
# Install the Debian packages named on the command line that are not installed yet (make test: chromium for the
# dashboard's browser tests): apt-get as root, `sudo -n` otherwise; when neither works, say what to run and fail.
set -eu
missing=""
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo -n"
else
    echo "system_packages.sh: missing Debian packages:$missing; run: sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "system_packages.sh: installing$missing" >&2
$as_root apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
    $as_root apt-get update -qq && $as_root apt-get install -y --no-install-recommends $missing
}
