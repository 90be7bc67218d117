#!/usr/bin/env bash
# Installs every Debian package hubert.c needs to build, test and run its demo.
# Idempotent: packages already present are not fetched again; `apt-get update` runs at most once
# per invocation and only when something is missing.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libhdf5-dev hdf5-tools libyaml-dev libsndfile1-dev libsamplerate0-dev
  libopenblas-openmp-dev libopenblas0-openmp
  openmpi-bin libopenmpi-dev
  python3 python3-numpy python3-torch python3-torchaudio python3-h5py python3-sklearn
  python3-matplotlib python3-yaml python3-venv python3-pip python3-setuptools
  espeak-ng libespeak-ng1 libespeak-ng-dev flite sox libsox-fmt-all
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
