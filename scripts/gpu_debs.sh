#!/usr/bin/env bash
# Run HERE (the Debian build machine), not on the GPU machine: downloads the Debian packages that
# hubert.c links against (HDF5, libyaml, libsndfile, libsamplerate, OpenBLAS-OpenMP, pkgconf) and
# the shared libraries they need into .debs/ at the repository root (git-ignored through
# .git/info/exclude). The GPU machine has no package registry; scripts/gpu_check.sh unpacks
# .debs/ into a private prefix there when its own system lacks these libraries. Carry it:
#   run(command="bash scripts/gpu_check.sh", carry=[".debs"])
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(
  pkgconf pkgconf-bin libpkgconf3
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libhdf5-hl-cpp-100 libhdf5-fortran-102
  libhdf5-hl-fortran-100 libsz2 libaec0 libaec-dev
  libcurl3-gnutls libnghttp2-14 librtmp1 libssh2-1 libpsl5 libgssapi-krb5-2 libldap-2.5-0 libbrotli1 libidn2-0
  libgnutls30 libnettle8 libhogweed6 libunistring2 libtasn1-6 libp11-kit0 libkrb5-3 libk5crypto3 libkrb5support0
  libkeyutils1 libcom-err2 libsasl2-2 libsasl2-modules-db libdb5.3 libgmp10 libffi8
  libyaml-dev libyaml-0-2
  libsndfile1-dev libflac-dev libogg-dev libvorbis-dev libopus-dev libmpg123-dev libsndfile1 libflac12 libvorbis0a libvorbisenc2 libogg0 libopus0 libmpg123-0 libout123-0 libsyn123-0 libmp3lame0
  libsamplerate0-dev libsamplerate0
  libopenblas-openmp-dev libopenblas0-openmp libgfortran5 libquadmath0
)
grep -qx '/.debs/' .git/info/exclude 2>/dev/null || echo '/.debs/' >> .git/info/exclude
mkdir -p .debs
cd .debs
apt-get download "${PKGS[@]}"
echo "gpu_debs: $(ls *.deb | wc -l) packages, $(du -sh . | cut -f1) in .debs/"
