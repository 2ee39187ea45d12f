#!/usr/bin/env bash
# Run the shipped systemd/rackpulse.service under a real, throwaway systemd on a machine where
# systemd is not PID 1 (containers, CI VMs): a private PID/mount/UTS/IPC namespace whose PID 1 is
# /lib/systemd/systemd in container mode. Checks Type=notify readiness, the hardening against the
# real daemon and its libraries, /readyz, a rejected and an accepted reload, the watchdog, and a
# clean stop; then tears everything down.
#
# Needs: root; deploy.md steps 1-3 done (rackpulse installed in /opt/rackpulse, user rackpulse);
# mosquitto; curl. Meant for disposable test machines: it creates /var/lib/rackpulse if missing
# (hidden behind a tmpfs inside the namespace) and removes the cgroups its systemd leaves behind.
# Usage: sudo tests/ops/systemd-trial.sh
set -euo pipefail

UNIT_SRC="$(cd "$(dirname "$0")/../.." && pwd)/systemd/rackpulse.service"
RP=/opt/rackpulse/bin/rackpulse
[ "$(id -u)" -eq 0 ] || { echo "FATAL: run as root" >&2; exit 1; }
[ -x "$RP" ] || { echo "FATAL: $RP missing; follow docs/deploy.md steps 1-2" >&2; exit 1; }
id rackpulse >/dev/null 2>&1 || { echo "FATAL: no user rackpulse; docs/deploy.md step 3" >&2; exit 1; }
for b in mosquitto curl unshare nsenter; do command -v $b >/dev/null || { echo "FATAL: $b missing" >&2; exit 1; }; done

private_tmps() { ls -d /tmp/systemd-private-*-rackpulse.service-* /var/tmp/systemd-private-*-rackpulse.service-* 2>/dev/null || true; }
BEFORE=$(private_tmps)
W=$(mktemp -d /tmp/rackpulse-trial.XXXXXX)
chmod 755 "$W"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MQ=$(free_port); HTTP=$(free_port); BASE=$(( 20000 + RANDOM % 20000 ))
PIDS=()
SD=""
cleanup() {
  set +e
  [ -n "$SD" ] && nsenter -t "$SD" -m -p -u -i systemctl exit 0 >/dev/null 2>&1 && sleep 2
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  # systemd leaves its (empty) cgroups in the shared hierarchy; remove the ones it made.
  for d in /sys/fs/cgroup/*/; do
    for c in "$d"system.slice/*/ "$d"system.slice "$d"init.scope; do
      [ -d "$c" ] && [ -z "$(cat "$c/cgroup.procs" 2>/dev/null)" ] && rmdir "$c" 2>/dev/null
    done
  done
  # PrivateTmp= directories outlive a manager that exits instead of shutting down.
  for t in $(private_tmps); do grep -qxF "$t" <<<"$BEFORE" || rm -rf "$t"; done
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -n "$SD" ] && nsenter -t "$SD" -m -p -u -i journalctl --no-pager -n 40 >&2; exit 1; }

# Devices and a broker on loopback (same network namespace as the service).
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQ" >"$W/mosquitto.conf"
mosquitto -c "$W/mosquitto.conf" >"$W/mosquitto.log" 2>&1 &
PIDS+=($!)
(cd "$W" && exec "$RP" simulate --snmp-pdus 1 --switches 1 --port-base "$BASE" --config-out "$W/sim.yaml") \
  >"$W/sim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/sim.yaml" ] && break; sleep 0.2; done
[ -s "$W/sim.yaml" ] || fail "rackpulse simulate wrote no config"

# The config the service reads: in the namespace's private /run, readable by group rackpulse only.
mkdir "$W/etc"
python3 - "$W" "$MQ" "$HTTP" <<'EOF'
import shutil, sys, yaml
w, mq, http = sys.argv[1], sys.argv[2], sys.argv[3]
c = yaml.safe_load(open(f"{w}/sim.yaml"))
c["agent"].update(name="rc-trial", state_dir="/var/lib/rackpulse")
c["prometheus"]["listen"] = f"127.0.0.1:{http}"
c["mqtt"] = {"url": f"mqtt://127.0.0.1:{mq}", "username": "rackpulse", "password_file": "/run/rackpulse-trial/mqtt.pass"}
for d in c["devices"]:
    if d.get("community_file"):
        name = d["community_file"].rsplit("/", 1)[1]
        shutil.copy(d["community_file"], f"{w}/etc/{name}")
        d["community_file"] = f"/run/rackpulse-trial/{name}"
yaml.safe_dump(c, open(f"{w}/etc/rackpulse.yaml", "w"), sort_keys=False)
EOF
echo "trial-secret-$RANDOM" >"$W/etc/mqtt.pass"
chown -R root:rackpulse "$W/etc"; chmod 0750 "$W/etc"; chmod 0640 "$W/etc"/*
SECRET=$(cat "$W/etc/mqtt.pass")

# Only the harness differs from the shipped unit: no sysinit.target (it would start udev and
# friends against the real machine), and the config path inside the private /run.
cat >"$W/trial.conf" <<EOF
[Unit]
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket systemd-journald.service
[Service]
ExecStart=
ExecStart=$RP run -c /run/rackpulse-trial/rackpulse.yaml
EOF
cat >"$W/boot.sh" <<EOF
#!/bin/bash
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /var/lib/rackpulse /var/log/journal
mount -t tmpfs -o mode=755 tmpfs /var/lib/rackpulse
mount -t tmpfs tmpfs /var/log/journal
cp -a "$W/etc" /run/rackpulse-trial
mkdir -p /run/systemd/system/rackpulse.service.d
cp "$UNIT_SRC" /run/systemd/system/rackpulse.service
cp "$W/trial.conf" /run/systemd/system/rackpulse.service.d/trial.conf
printf '[Unit]\nDefaultDependencies=no\nWants=systemd-journald.service rackpulse.service\n' \
  > /run/systemd/system/rackpulse-trial.target
hostname rackpulse-trial
exec env -i container=rackpulse-trial PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=rackpulse-trial.target --log-target=null --show-status=no
EOF
chmod +x "$W/boot.sh"
unshare --pid --fork --mount --uts --ipc --propagation private --mount-proc "$W/boot.sh" >"$W/boot.log" 2>&1 &
UNSHARE=$!
for _ in $(seq 50); do SD=$(pgrep -P "$UNSHARE" -x systemd || true); [ -n "$SD" ] && break; sleep 0.1; done
[ -n "$SD" ] || fail "systemd did not start: $(cat "$W/boot.log")"
ns() { nsenter -t "$SD" -m -p -u -i "$@"; }
prop() { ns systemctl show rackpulse -P "$1"; }

for _ in $(seq 100); do [ "$(prop ActiveState 2>/dev/null)" = active ] && break; sleep 0.1; done
[ "$(prop ActiveState)" = active ] || fail "rackpulse.service is not active"
echo "ok   Type=notify: active, status \"$(prop StatusText)\""

for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$HTTP/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$HTTP/readyz" >/dev/null || fail "/readyz never answered 200"
# Read whole outputs before grepping: with pipefail, grep -q closing the pipe early fails the check.
M=$(curl -fsS "http://127.0.0.1:$HTTP/metrics")
grep -q '^process_start_time_seconds' <<<"$M" || fail "no process metrics"
grep -q '^rackpulse_mqtt_connected 1' <<<"$M" || fail "MQTT not connected"
echo "ok   /readyz 200, process metrics, MQTT connected, running as $(ns ps -o user= -p "$(prop MainPID)")"

journal() { ns journalctl -u rackpulse -o cat --no-pager; }
J=$(journal)
grep -q 'event=started' <<<"$J" || fail "no started event in the journal"
grep -q '^ts=' <<<"$J" && fail "timestamps in journal lines"
grep -qF "$SECRET" <<<"$J" && fail "the MQTT password reached the journal"
[ -n "$(ns journalctl -u rackpulse -p warning -o cat --no-pager)" ] || fail "no warning-priority lines (<4> prefix)"
echo "ok   journal: one event per line, no ts=, no secrets"

cp "$W/etc/rackpulse.yaml" "$W/good.yaml"
ns sed -i 's/^site: .*/site: "bad site"/' /run/rackpulse-trial/rackpulse.yaml
ns systemctl reload rackpulse; sleep 1
[ "$(prop ActiveState)" = active ] || fail "a bad reload stopped the service"
grep -q 'event=reload_rejected' <<<"$(journal)" || fail "bad reload not rejected"
ns cp "$W/good.yaml" /run/rackpulse-trial/rackpulse.yaml
ns systemctl reload rackpulse; sleep 1
grep -q 'event=reloaded' <<<"$(journal)" || fail "good reload not applied"
echo "ok   reload: bad config rejected, good config applied, still active"

PID=$(prop MainPID)
sleep 35   # longer than WatchdogSec=30
[ "$(prop NRestarts)" = 0 ] && [ "$(prop MainPID)" = "$PID" ] || fail "restarted: the watchdog was not pinged"
echo "ok   watchdog: pinged for 35 s, no restart"

T0=$(date +%s.%N)
ns systemctl stop rackpulse
T1=$(date +%s.%N)
[ "$(prop Result)" = success ] || fail "stop result $(prop Result)"
echo "ok   stop: clean exit in $(python3 -c "print(round($T1-$T0, 2))") s"
echo "PASS"
