#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# svm-dev: boot the running kernel as an L2 guest with the Python VMM
# (tools/kvm) and a busybox initramfs that prints a line and powers off.
# Run inside the rig:
#   tools/testing/vmtest/vmtest --hv onekvm -- tools/testing/selftests/kvm/svm-dev/l2boot.sh
# Env: DEV (default /dev/onekvm), MEM (MiB, 256), PARAMS (extra kernel
# parameters), BOOT_TMO (seconds, 600). Exit 0 when the guest reached init
# and powered off.
set -u
REPO=$(cd "$(dirname "$0")/../../../../.." && pwd)
W=$(mktemp -d)
mkdir -p "$W/rd/bin" "$W/rd/proc"
cp /bin/busybox "$W/rd/bin/busybox"
cat > "$W/rd/init" <<'EOI'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo "L2 INIT OK: $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)"
poweroff -f
EOI
chmod +x "$W/rd/init"
(cd "$W/rd" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$W/initrd.gz")
export PYTHONPATH="$REPO/tools/kvm:$REPO/build/meson/tools/kvm"
PY=${VMTEST_PY:-python3}
start=$(date +%s)
timeout "${BOOT_TMO:-600}" $PY -m onekvm run --dev "${DEV:-/dev/onekvm}" \
	--irqchip user --no-control --stats -k "/boot/vmlinuz-$(uname -r)" \
	-i "$W/initrd.gz" -m "${MEM:-256}" -p "${PARAMS:-}" > "$W/log" 2>&1
rc=$?
end=$(date +%s)
tail -n 25 "$W/log"
echo "l2boot: VMM exit $rc after $((end - start)) s"
grep -q "L2 INIT OK" "$W/log" && [ $rc -eq 0 ]
ok=$?
rm -rf "$W"
exit $ok
