#!/usr/bin/env bash
# Installs Bangfu on this machine (as root): builds in release mode, installs the executables
# to /usr/local/bin, the units to /etc/systemd/system, example configuration to /etc/bangfu
# (existing files are kept), and the documentation; then enables the target.
#   deploy/install.sh            install and enable (does not start)
#   deploy/install.sh --start    … and start bangfu.target
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }
scripts/setup
swift build -c release
bin=$(swift build -c release --show-bin-path)
install -m 0755 "$bin"/bangfu "$bin"/bangfu-registry "$bin"/bangfu-matcher "$bin"/bangfu-payments "$bin"/bangfu-notifier /usr/local/bin/
install -d -m 0755 /etc/bangfu /usr/local/share/doc/bangfu /usr/local/share/bangfu/policies
for f in deploy/config/*; do
  dest=/etc/bangfu/$(basename "$f")
  [[ -e $dest ]] || install -m 0644 "$f" "$dest"
done
install -m 0644 docs/*.md /usr/local/share/doc/bangfu/
install -m 0644 policies/*.yaml /usr/local/share/bangfu/policies/
# The CLI's endpoints: the shipped configurations put the services on ipc:///run/bangfu/…
# (the CLI's own defaults are loopback TCP ports), so login shells get them from here: intake,
# replay and feed (`bangfu tail --follow` reads the feed). A file an older install.sh wrote
# without the feeds is rewritten; one edited by hand (no header line) is left alone.
profile=/etc/profile.d/bangfu.sh
if [[ ! -e $profile ]] || { head -n1 "$profile" | grep -q '^# Bangfu CLI endpoints (deploy/install.sh)' && ! grep -q '_FEED=' "$profile"; }; then
  {
    echo "# Bangfu CLI endpoints (deploy/install.sh); match them to /etc/bangfu/*.yaml"
    for s in registry matcher payments notifier; do
      u=${s^^}
      echo "export BANGFU_${u}_INTAKE=ipc:///run/bangfu/$s-intake BANGFU_${u}_REPLAY=ipc:///run/bangfu/$s-replay BANGFU_${u}_FEED=ipc:///run/bangfu/$s-feed"
    done
  } >/etc/profile.d/bangfu.sh
  chmod 0644 /etc/profile.d/bangfu.sh
fi
id bangfu >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/bangfu --shell /usr/sbin/nologin bangfu
install -d -m 0770 -o bangfu -g bangfu /var/spool/bangfu/payments
install -d -m 0775 -o bangfu -g bangfu /var/www/bangfu-board
install -m 0644 deploy/systemd/*.service deploy/systemd/*.target /etc/systemd/system/
systemd-analyze verify /etc/systemd/system/bangfu-*.service /etc/systemd/system/bangfu.target
systemctl daemon-reload
systemctl enable bangfu.target
if [[ ${1:-} == --start ]]; then systemctl start bangfu.target; fi
echo "installed; configuration in /etc/bangfu, state in /var/lib/bangfu, board in /var/www/bangfu-board"
echo "serve the board from /var/www/bangfu-board/current (example: deploy/nginx/bangfu-board.conf)"
