#!/usr/bin/env bash
# Build a Python base image from Debian's packages, for machines that cannot pull python:3.11-slim from a registry
# of images: Debian bookworm (Python 3.11), minimal, with python3-venv and ca-certificates, imported into Podman as
# $BASE_IMAGE (default localhost/debian-bookworm-python:12). Pass it to the build:
#   podman build --build-arg BASE_IMAGE=localhost/debian-bookworm-python:12 --build-arg PYTHON=python3 ...
# Needs root, debootstrap and podman; about 75 s. Does nothing when the image exists (FORCE=1 rebuilds it).
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/debian-bookworm-python:12}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PODMAN=(podman ${PODMAN_OPTS:---runtime /usr/sbin/runc --cgroup-manager=cgroupfs})

if [ "${FORCE:-0}" != 1 ] && "${PODMAN[@]}" image exists "$BASE_IMAGE"; then
    echo "base image $BASE_IMAGE exists"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "needs debootstrap: apt-get install -y debootstrap" >&2; exit 2; }
rootfs=$(mktemp -d /var/tmp/mnemostore-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR"
# What a container needs no more of: the package lists and caches, documentation, locales.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
tar -C "$rootfs" -c . | "${PODMAN[@]}" import \
    --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE"
echo "built base image $BASE_IMAGE"
