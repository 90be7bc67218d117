#!/usr/bin/env bash
# Builds the built-in demo corpus from Debian packages (docs/data.md): downloads the data
# packages with `apt-get download` into a cache, unpacks them with `dpkg -x` (no system install),
# then converts and synthesizes with data_prep/demo_corpus.py. Deterministic and cached.
#
#   data_prep/demo_corpus.sh [--out DIR] [--minutes M] [--seed S] [--cache DIR] [--jobs N]
#
# Exit status: 0 ok, 1 error, 3 the data packages could not be downloaded.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="demo_corpus"
MINUTES=45
SEED=1234
CACHE="${HUBERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hubert}/debian-data"
JOBS="$(nproc 2>/dev/null || echo 2)"

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo_corpus: unknown option '$1'" >&2; usage >&2; exit 1 ;;
  esac
done

for tool in sox espeak-ng flite apt-get dpkg /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "demo_corpus: '$tool' not found; run scripts/setup.sh" >&2; exit 1; }
done
if ! sox -h 2>/dev/null | grep -q 'AUDIO FILE FORMATS:.*vorbis'; then
  echo "demo_corpus: sox cannot read ogg/vorbis; install libsox-fmt-all (scripts/setup.sh)" >&2
  exit 1
fi

PKGS=(
  asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav
  asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav
  asterisk-core-sounds-en asterisk-core-sounds-es asterisk-core-sounds-fr
  asterisk-core-sounds-it asterisk-core-sounds-ru
  fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl pocketsphinx-testdata
)
DEBS="$CACHE/debs"
ROOT="$CACHE/root"
mkdir -p "$DEBS" "$ROOT"

# Download only what is missing (apt-get download names files PKG_VERSION_all.deb).
need=()
for p in "${PKGS[@]}"; do
  compgen -G "$DEBS/${p}_*.deb" >/dev/null || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "demo_corpus: downloading ${#need[@]} packages into $DEBS"
  if ! (cd "$DEBS" && apt-get download -o APT::Sandbox::User=root "${need[@]}" >/dev/null 2>"$DEBS/download.log"); then
    if [ "$(id -u)" -eq 0 ] && apt-get update -qq >/dev/null 2>&1 &&
       (cd "$DEBS" && apt-get download -o APT::Sandbox::User=root "${need[@]}" >/dev/null 2>"$DEBS/download.log"); then
      :
    else
      echo "demo_corpus: could not download the data packages (see $DEBS/download.log):" >&2
      tail -3 "$DEBS/download.log" >&2 || true
      exit 3
    fi
  fi
fi

# Unpack each .deb once (a stamp per package file).
for deb in "$DEBS"/*.deb; do
  stamp="$ROOT/.unpacked-$(basename "$deb")"
  if [ ! -f "$stamp" ]; then
    dpkg -x "$deb" "$ROOT"
    touch "$stamp"
  fi
done

exec /usr/bin/python3 "$HERE/demo_corpus.py" --root "$ROOT" --out "$OUT" --minutes "$MINUTES" \
  --seed "$SEED" --jobs "$JOBS"
