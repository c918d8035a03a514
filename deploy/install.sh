#!/usr/bin/env bash
# Installs Bangfu on this machine (as root): builds in release mode, installs the executables
# to /usr/local/bin, the units to /etc/systemd/system, example configuration to /etc/bangfu
# (existing files are kept; 0640 root:bangfu, in a directory only root and the group bangfu may
# enter), the key store /etc/bangfu/keys (root's alone: systemd hands each service its
# <service>.key as a credential), and the documentation; then enables the target.
#   deploy/install.sh            install and enable (does not start)
#   deploy/install.sh --start    … and start bangfu.target
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $(id -u) -eq 0 ]] || { echo "run as root" >&2; exit 1; }
scripts/setup
swift build -c release
bin=$(swift build -c release --show-bin-path)
install -m 0755 "$bin"/bangfu "$bin"/bangfu-registry "$bin"/bangfu-matcher "$bin"/bangfu-payments "$bin"/bangfu-notifier /usr/local/bin/
id bangfu >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/bangfu --shell /usr/sbin/nologin bangfu
install -d -m 0755 /usr/local/share/doc/bangfu /usr/local/share/bangfu/policies
# The configuration is read by the services (group bangfu) and by no one else: it may name
# accounts, webhooks and, in an older install, a secret key. Members of the group bangfu are
# operators (docs/operations.md §5).
install -d -m 0750 -o root -g bangfu /etc/bangfu
install -d -m 0700 -o root -g root /etc/bangfu/keys
for f in deploy/config/*; do
  dest=/etc/bangfu/$(basename "$f")
  [[ -e $dest ]] || install -m 0640 -o root -g bangfu "$f" "$dest"
done
# Files an older install.sh left world-readable: closed to others, kept readable by the services.
for f in /etc/bangfu/*; do
  [[ -f $f && ! -L $f ]] || continue
  before=$(stat -c '%a %U:%G' "$f")
  chgrp bangfu "$f"
  chmod g-w,o-rwx "$f"
  after=$(stat -c '%a %U:%G' "$f")
  [[ $before == "$after" ]] || echo "tightened $f: $before -> $after"
done
for f in /etc/bangfu/keys/*; do
  [[ -f $f ]] || continue
  chown root:root "$f" && chmod 0600 "$f"
done
if grep -ls '^[[:space:]]*curve-secret-key:' /etc/bangfu/*.yaml; then
  echo "warning: the files above hold a CURVE secret key in clear: move each to /etc/bangfu/keys/<service>.key (mode 0600) and delete the line (docs/operations.md §11)" >&2
fi
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
# The pickup agent moves batch files into outbox/sent and the bank drops returns into inbox: both
# of the group bangfu. Made here, group-writable, since what the service makes itself is 0750.
install -d -m 0770 -o bangfu -g bangfu /var/spool/bangfu/payments /var/spool/bangfu/payments/outbox \
  /var/spool/bangfu/payments/outbox/sent /var/spool/bangfu/payments/inbox
# Each service's state directory exists before any of them starts, so that every other unit's
# InaccessiblePaths= covers it (systemd's StateDirectory= would make it only at that service's start).
install -d -m 0755 /var/lib/bangfu
for s in registry matcher payments notifier; do install -d -m 0750 -o bangfu -g bangfu "/var/lib/bangfu/$s"; done
install -d -m 0775 -o bangfu -g bangfu /var/www/bangfu-board
install -m 0644 deploy/systemd/*.service deploy/systemd/*.target /etc/systemd/system/
systemd-analyze verify /etc/systemd/system/bangfu-*.service /etc/systemd/system/bangfu.target
systemctl daemon-reload
systemctl enable bangfu.target
if [[ ${1:-} == --start ]]; then systemctl start bangfu.target; fi
echo "installed; configuration in /etc/bangfu, state in /var/lib/bangfu, board in /var/www/bangfu-board"
echo "serve the board from /var/www/bangfu-board/current (example: deploy/nginx/bangfu-board.conf)"
