# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# `scripts/fuzz-qemu patched`, sourced by it: build $SRC_SUITE's QEMU from
# Debian's source package with this directory's patches into $OUT.  Uses
# the caller's OUT, A, apt_opts, MIN, PATCHES, stamp, WRAPPER, log, die.
#
# Only what the rig needs is built (x86_64 TCG, 9p for the shared root),
# with debug info, so that gdb on a core or a live rig names QEMU's
# functions; the firmware comes from the host's qemu-system-x86 (the rig
# needs it anyway).

deps=(gcc make pkg-config ninja-build python3-venv dpkg-dev xz-utils
      libglib2.0-dev libpixman-1-dev libcap-ng-dev libattr1-dev libfdt-dev)
missing=()
for p in "${deps[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] ||
		die "QEMU's build needs: ${missing[*]} (apt-get install them as root)"
	log "installing QEMU's build dependencies: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
		install "${missing[@]}" >/dev/null
fi

log "fetching $SRC_SUITE's qemu source package"
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$OUT" && apt-get "${apt_opts[@]}" source --download-only qemu >/dev/null)
dsc=$(ls "$OUT"/qemu_*.dsc)
ver=$(sed -n 's/^Version: //p' "$dsc")
if dpkg --compare-versions "$ver" lt "$MIN"; then
	die "$SRC_SUITE has qemu $ver, older than $MIN"
fi
# apt checked the files against the suite's signed Release.
dpkg-source --no-check -x "$dsc" "$OUT/src" >/dev/null
rm -rf "$A" "$OUT"/qemu_*

S=$OUT/src
for p in "$PATCHES"/*.patch; do
	patch -s -p1 -d "$S" < "$p" || die "$p does not apply to qemu $ver"
done
# Debian's +ds tarball has no EDK2 firmware to unpack.
sed -i 's/^\( *unpack_edk2_blobs = \)bzip2.found()$/\1false/' "$S/meson.build"
grep -q "unpack_edk2_blobs = bzip2" "$S/meson.build" &&
	die "qemu $ver: meson.build's EDK2 unpacking not found to switch off"
# configure installs its Python build tools from python/wheels, which the
# +ds tarball leaves out.
python3 -m pip download --no-deps -d "$S/python/wheels" \
	meson==1.5.0 pycotap==1.3.1 > "$OUT/pip.log" 2>&1 ||
	die "fetching QEMU's Python build tools failed: $OUT/pip.log"

log "building qemu $ver with $(ls "$PATCHES"/*.patch | wc -l) patches (a few minutes)"
mkdir -p "$S/b"
(cd "$S/b" && ../configure --target-list=x86_64-softmmu \
	--without-default-features --enable-tcg --enable-virtfs \
	--enable-cap-ng --enable-attr --disable-werror --enable-debug-info \
	--disable-docs --disable-install-blobs > "$OUT/configure.log" 2>&1) ||
	die "configure failed: $OUT/configure.log"
ninja -C "$S/b" qemu-system-x86_64 > "$OUT/build.log" 2>&1 ||
	die "build failed: $OUT/build.log"

bin=$S/b/qemu-system-x86_64
cat > "$WRAPPER" <<EOF
#!/bin/sh
# $SRC_SUITE's QEMU $ver with tools/testing/fuzz/qemu/*.patch (scripts/fuzz-qemu wrote this)
exec "$bin" -L /usr/share/qemu -L /usr/share/seabios "\$@"
EOF
chmod +x "$WRAPPER"
echo "$stamp" > "$OUT/patches.sha256"
"$WRAPPER" --version | head -1 | sed 's/^/fuzz-qemu: /'
