#!/usr/bin/env bash
# `make image`: the Coconut image, from Debian packages only. mmdebstrap
# makes a Debian trixie root (its 6.12 kernel, systemd, udev) from this
# machine's mirror with the coconut .deb installed and coconutd enabled;
# the .debs apt fetched are kept in $CACHE between builds. The disk is a
# DOS-labelled raw image: a FAT boot partition with syslinux, the kernel,
# the initramfs and syslinux.cfg (the kernel command line: serial console,
# `bpf` added to Debian's CONFIG_LSM list), and an ext4 root made with
# mkfs.ext4 -d (no loop device, no mount). qemu-img converts it to qcow2.
# The FAT partition boots UEFI machines too (systemd-boot, loader/ beside
# syslinux.cfg), and the hybrid ISO (xorriso) carries the same two
# partition images appended after its ISO 9660 tree: isolinux for BIOS, the
# FAT partition as the EFI system partition, the ext4 root behind them.
# Fixed UUIDs, SOURCE_DATE_EPOCH (the last commit) clamps file times; what
# still differs between two builds is said in docs/image.md.
# Run as root, after `make deb`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEB=${1:-$(ls -t coconut_*_amd64.deb 2>/dev/null | head -n 1)}
OUT=${COCONUT_IMAGE_OUT:-build/image}
CACHE=${COCONUT_IMAGE_CACHE:-/var/cache/coconut-image}
SUITE=${COCONUT_IMAGE_SUITE:-trixie}
[ -f "$DEB" ] || { echo "image: no .deb (run make deb)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "image: run as root" >&2; exit 1; }
for tool in mmdebstrap:mmdebstrap mkfs.vfat:dosfstools mcopy:mtools syslinux:syslinux qemu-img:qemu-utils sfdisk:fdisk xorriso:xorriso; do
	command -v "${tool%%:*}" >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}"; }
done
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq syslinux-common; }
[ -f /usr/lib/ISOLINUX/isohdpfx.bin ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq isolinux; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)

# Fixed identities: the same inputs give the same file systems.
ROOT_UUID=c0c0a0e1-0000-4000-8000-000000000001
BOOT_ID=C0C0A001
DISK_ID=0xc0c0a001
BOOT_MIB=192

t0=$(date +%s)
mkdir -p "$CACHE/archives" "$OUT"
WORK=$(mktemp -d /var/tmp/coconut-image.XXXXXX)
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOT=$WORK/root
cp "$DEB" "$WORK/coconut.deb"

# The Workstation session (image/rootfs/usr/libexec/coconut-image/session
# turns it on for that profile only): sway, waybar, foot, mako, grim for
# the image test's screenshot; a user bus for notifications.
SESSION_PKGS="sway waybar foot mako-notifier grim dbus-user-session libpam-systemd fonts-dejavu-core"

# No recommends, no documentation, man pages or locales (dpkg path-exclude);
# the copyright files stay.
echo "== mmdebstrap $SUITE from $mirror (package cache: $CACHE/archives)"
nice mmdebstrap --variant=apt --mode=root \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--include=systemd,systemd-sysv,udev,kmod,initramfs-tools,linux-image-amd64,passwd,login,e2fsprogs,dosfstools,systemd-boot-efi \
	--skip=download/empty --skip=essential/unlink \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
	--setup-hook="sync-in $CACHE/archives /var/cache/apt/archives" \
	--customize-hook="copy-in $WORK/coconut.deb /tmp" \
	--customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/coconut.deb systemd-resolved $SESSION_PKGS" \
	--customize-hook="sync-out /var/cache/apt/archives $CACHE/archives" \
	--customize-hook='rm -f "$1"/tmp/coconut.deb "$1"/var/cache/apt/archives/*.deb' \
	--customize-hook="tar -C '$PWD/image/rootfs' --owner=0 --group=0 -c . | tar -C \"\$1\" -x" \
	--customize-hook='chroot "$1" systemctl enable coconutd.service coconut-firstboot.service coconut-image-test.service coconut-session-test.service systemd-networkd.service systemd-resolved.service' \
	"$SUITE" "$ROOT" "$mirror"

KVER=$(ls "$ROOT"/lib/modules | sort -V | tail -n 1)
# Debian's LSM order (CONFIG_LSM) with bpf added when absent: the order
# decides which exclusive LSM wins, so it is kept as Debian ships it.
LSM_DEFAULT=$(sed -n 's/^CONFIG_LSM="\(.*\)"$/\1/p' "$ROOT/boot/config-$KVER")
[ -n "$LSM_DEFAULT" ] || { echo "image: no CONFIG_LSM in config-$KVER" >&2; exit 1; }
grep -q '^CONFIG_BPF_LSM=y' "$ROOT/boot/config-$KVER" || { echo "image: $KVER lacks CONFIG_BPF_LSM" >&2; exit 1; }
case ",$LSM_DEFAULT," in *,bpf,*) LSM=$LSM_DEFAULT ;; *) LSM=$LSM_DEFAULT,bpf ;; esac
echo "== kernel $KVER: CONFIG_LSM=$LSM_DEFAULT -> lsm=$LSM"
CMDLINE="root=UUID=$ROOT_UUID ro console=tty0 console=ttyS0,115200 lsm=$LSM"

cat >"$ROOT/etc/fstab" <<FSTAB
UUID=$ROOT_UUID / ext4 defaults,errors=remount-ro 0 1
UUID=${BOOT_ID:0:4}-${BOOT_ID:4:4} /boot/firmware vfat defaults,nofail,umask=0077 0 2
FSTAB
mkdir -p "$ROOT/boot/firmware"
echo coconut >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcoconut\n' >"$ROOT/etc/hosts"
: >"$ROOT/etc/machine-id" # systemd makes one at first boot
sed "s|@CMDLINE@|$CMDLINE|" image/syslinux.cfg >"$WORK/syslinux.cfg"
sed "s|@CMDLINE@|$CMDLINE|" image/loader/entries/coconut.conf >"$WORK/coconut.conf"
EFI=$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ -f "$EFI" ] || { echo "image: no $EFI (systemd-boot-efi)" >&2; exit 1; }
mkdir -p "$ROOT/etc/coconut-image"
printf '%s\n' "$CMDLINE" >"$ROOT/etc/coconut-image/cmdline"
printf 'SOURCE_DATE_EPOCH=%s\nKERNEL=%s\nLSM=%s\n' "$SOURCE_DATE_EPOCH" "$KVER" "$LSM" >"$ROOT/etc/coconut-image/build"
rm -f "$ROOT"/var/log/*.log "$ROOT"/var/cache/ldconfig/aux-cache "$ROOT"/var/lib/dbus/machine-id
find "$ROOT" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

echo "== boot partition (FAT: syslinux for BIOS, systemd-boot for UEFI)"
BOOT=$WORK/boot.img
rm -f "$BOOT" && truncate -s ${BOOT_MIB}M "$BOOT"
# --invariant before -i: after it, it would replace the volume id (the
# fstab's UUID) with its constant 1234-ABCD.
mkfs.vfat -n COCONUTBOOT --invariant -i "$BOOT_ID" "$BOOT" >/dev/null
export MTOOLS_SKIP_CHECK=1
mcopy -i "$BOOT" -m "$ROOT/boot/vmlinuz-$KVER" ::/vmlinuz
mcopy -i "$BOOT" -m "$ROOT/boot/initrd.img-$KVER" ::/initrd.img
mcopy -i "$BOOT" -m "$WORK/syslinux.cfg" ::/syslinux.cfg
mcopy -i "$BOOT" -m image/preseed.example ::/coconut-preseed.example
mmd -i "$BOOT" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$BOOT" -m "$EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$BOOT" -m image/loader/loader.conf ::/loader/loader.conf
mcopy -i "$BOOT" -m "$WORK/coconut.conf" ::/loader/entries/coconut.conf
syslinux --install "$BOOT"

echo "== root partition (ext4 from the tree)"
used=$(du -sxm "$ROOT" | cut -f1)
ROOT_MIB=$(( used + used / 4 + 768 ))
ROOTFS=$WORK/root.img
rm -f "$ROOTFS"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH nice mkfs.ext4 -q -L coconut-root -U "$ROOT_UUID" \
	-E root_owner=0:0,hash_seed=$ROOT_UUID -d "$ROOT" "$ROOTFS" ${ROOT_MIB}M

echo "== disk: DOS label, boot ${BOOT_MIB} MiB + root ${ROOT_MIB} MiB"
DISK=$OUT/coconut.raw
rm -f "$DISK" && truncate -s $(( (1 + BOOT_MIB + ROOT_MIB) * 1024 * 1024 )) "$DISK"
sfdisk -q "$DISK" <<PART
label: dos
label-id: $DISK_ID
start=2048, size=$(( BOOT_MIB * 2048 )), type=c, bootable
start=$(( 2048 + BOOT_MIB * 2048 )), type=83
PART
dd if="$BOOT" of="$DISK" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$ROOTFS" of="$DISK" bs=1M seek=$(( 1 + BOOT_MIB )) conv=notrunc,sparse status=none
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$DISK" bs=440 count=1 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 -c "$DISK" "$OUT/coconut.qcow2"

# The hybrid ISO: an ISO 9660 tree with isolinux, the kernel and the
# initramfs (El Torito BIOS; isohdpfx.bin in the MBR makes it boot from a
# USB stick too), then the same FAT partition as an appended EFI system
# partition and the same ext4 root as partition 3, which root=UUID= finds.
# The appended partitions are in a GPT (the MBR protective): OVMF reads a
# GPT before El Torito, and an El Torito EFI entry cannot say the size of a
# 192 MiB image (its count field is 16 bits), so there is none: UEFI boots
# the ISO as a disk. xorriso takes its dates from SOURCE_DATE_EPOCH.
echo "== hybrid ISO (BIOS: isolinux, UEFI: systemd-boot on the appended FAT partition)"
ISO=$WORK/iso
mkdir -p "$ISO/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$ISO/isolinux/"
cp "$WORK/syslinux.cfg" "$ISO/isolinux/isolinux.cfg"
cp "$ROOT/boot/vmlinuz-$KVER" "$ISO/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$ISO/initrd.img"
find "$ISO" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
rm -f "$OUT/coconut.iso"
nice xorriso -report_about WARNING -as mkisofs -o "$OUT/coconut.iso" -V COCONUT -R -J \
	-isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
	-b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
	-append_partition 2 0xef "$BOOT" -append_partition 3 0x83 "$ROOTFS" -appended_part_as_gpt \
	"$ISO"
fallocate -d "$OUT/coconut.iso" 2>/dev/null || true
touch -d "@$SOURCE_DATE_EPOCH" "$DISK" "$OUT/coconut.qcow2" "$OUT/coconut.iso"
echo "== $DISK ($(du -m --apparent-size "$DISK" | cut -f1) MiB, $(du -m "$DISK" | cut -f1) MiB allocated), $OUT/coconut.qcow2 ($(du -m "$OUT/coconut.qcow2" | cut -f1) MiB), $OUT/coconut.iso ($(du -m --apparent-size "$OUT/coconut.iso" | cut -f1) MiB, $(du -m "$OUT/coconut.iso" | cut -f1) MiB allocated)"
(cd "$OUT" && sha256sum coconut.raw coconut.qcow2 coconut.iso >SHA256SUMS)
echo "image: OK in $(( $(date +%s) - t0 )) s (kernel $KVER, lsm=$LSM)"
