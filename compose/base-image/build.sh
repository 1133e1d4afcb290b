#!/usr/bin/env bash
# A Debian base image built here, for machines that cannot pull one: mmdebstrap writes a minimal
# bookworm root file system (python3 and venv, the network tools the compose backend's link faults
# use) as a tarball that `docker import` turns into IMAGE. About a minute; skipped when IMAGE exists.
#
# The packages come from this machine's own apt sources and options (whatever mirror it is
# configured for), and its CA bundle goes into the image so that builds on top of it reach the same
# package indexes through the same certificate chain.
#
#   compose/base-image/build.sh [IMAGE]        (default rebalance-lab-base:bookworm)
set -euo pipefail
IMAGE=${1:-rebalance-lab-base:bookworm}
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates,iproute2,iptables,procps,passwd

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE exists"
  exit 0
fi

mirrors=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  if [ -s "$f" ]; then mirrors+=("$f"); fi
done
if [ "${#mirrors[@]}" = 0 ]; then
  echo "no apt sources on this machine (/etc/apt/sources.list*): mmdebstrap needs a Debian mirror" >&2
  exit 1
fi
aptopts=()
for f in /etc/apt/apt.conf.d/*; do
  # Acquire settings only (proxies, date checks): the host's other apt options are its own business.
  if grep -q '^Acquire::' "$f" 2>/dev/null; then aptopts+=(--aptopt="$f"); fi
done
hooks=()
bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [ -s "$bundle" ]; then
  hooks+=(--customize-hook="upload $bundle /usr/local/share/ca-certificates/host-bundle.crt"
          --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null 2>&1')
fi

echo "building base image $IMAGE with mmdebstrap (Debian $SUITE: $PACKAGES)"
mmdebstrap --quiet --variant=apt --include="$PACKAGES" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  "${aptopts[@]}" "${hooks[@]}" \
  --customize-hook='chroot "$1" apt-get clean' \
  "$SUITE" - "${mirrors[@]}" \
  | docker import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE: $(docker image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec)"
