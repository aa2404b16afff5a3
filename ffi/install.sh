#!/usr/bin/env bash
# Installs the C library the way a distribution would:
#   PREFIX/lib/liblivecache.so.X.Y.Z   (soname liblivecache.so.X), liblivecache.so.X and liblivecache.so symlinks
#   PREFIX/lib/liblivecache.a
#   PREFIX/include/livecache.h, livecache.supp (valgrind suppressions for the release library)
#   PREFIX/lib/pkgconfig/livecache.pc
#   PREFIX/lib/cmake/livecache/        (find_package(livecache) gives livecache::livecache and livecache::static)
#
# usage: ffi/install.sh --prefix DIR [--libdir DIR] [--destdir DIR] [--no-build]
#   --libdir   where the libraries go (default PREFIX/lib); pkg-config and CMake files follow it
#   --destdir  staging root prepended to every path written (packagers); the files still name PREFIX
#   --no-build install what target/release holds (built by an earlier run of this script)
#   --no-strip keep the debug information (the release profile has line tables: 90 MB instead of 13 MB)
# Only `livecache_*` symbols are exported from the shared library.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="" LIBDIR="" DESTDIR="${DESTDIR:-}" BUILD=1 STRIP=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --libdir) LIBDIR="$2"; shift 2 ;;
    --libdir=*) LIBDIR="${1#*=}"; shift ;;
    --destdir) DESTDIR="$2"; shift 2 ;;
    --destdir=*) DESTDIR="${1#*=}"; shift ;;
    --no-build) BUILD=0; shift ;;
    --no-strip) STRIP=0; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ffi/install.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$PREFIX" ]; then
  echo "ffi/install.sh: --prefix DIR is required (see --help)" >&2
  exit 2
fi
case "$PREFIX" in /*) ;; *) PREFIX="$(pwd)/$PREFIX" ;; esac
LIBDIR="${LIBDIR:-$PREFIX/lib}"
case "$LIBDIR" in /*) ;; *) LIBDIR="$(pwd)/$LIBDIR" ;; esac

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
MAJOR="${VERSION%%.*}"
SONAME="liblivecache.so.$MAJOR"
BUILT="${CARGO_TARGET_DIR:-$ROOT/target}/release"

if [ "$BUILD" = 1 ]; then
  # The soname goes in at link time, for this build only: in-tree builds keep linking as before.
  (cd "$ROOT" && cargo rustc --quiet --release -p livecache-ffi --lib -- -C "link-arg=-Wl,-soname,$SONAME")
fi
for f in liblivecache.so liblivecache.a; do
  [ -f "$BUILT/$f" ] || { echo "ffi/install.sh: $BUILT/$f is missing (run without --no-build)" >&2; exit 1; }
done
if ! readelf -d "$BUILT/liblivecache.so" | grep -q "SONAME.*\[$SONAME\]"; then
  echo "ffi/install.sh: $BUILT/liblivecache.so has no soname $SONAME (run without --no-build)" >&2
  exit 1
fi

lib="$DESTDIR$LIBDIR"
inc="$DESTDIR$PREFIX/include"
mkdir -p "$lib/pkgconfig" "$lib/cmake/livecache" "$inc"
install -m 0755 "$BUILT/liblivecache.so" "$lib/liblivecache.so.$VERSION"
ln -sf "liblivecache.so.$VERSION" "$lib/$SONAME"
ln -sf "$SONAME" "$lib/liblivecache.so"
install -m 0644 "$BUILT/liblivecache.a" "$lib/liblivecache.a"
if [ "$STRIP" = 1 ]; then
  strip --strip-unneeded "$lib/liblivecache.so.$VERSION"
  strip --strip-debug "$lib/liblivecache.a"
fi
install -m 0644 "$ROOT/include/livecache.h" "$inc/livecache.h"
install -m 0644 "$ROOT/include/livecache.supp" "$inc/livecache.supp"
sed -e "s|@PREFIX@|$PREFIX|" -e "s|@LIBDIR@|$LIBDIR|" -e "s|@VERSION@|$VERSION|" \
  "$ROOT/ffi/livecache.pc.in" >"$lib/pkgconfig/livecache.pc"
# The CMake files find the prefix from where they are: the installed tree can be moved whole.
rel_include=$(realpath -m --relative-to="$LIBDIR/cmake/livecache" "$PREFIX/include")
rel_lib=$(realpath -m --relative-to="$LIBDIR/cmake/livecache" "$LIBDIR")
sed -e "s|@VERSION@|$VERSION|g" -e "s|@SONAME@|$SONAME|g" -e "s|@REL_INCLUDE@|$rel_include|g" -e "s|@REL_LIB@|$rel_lib|g" \
  "$ROOT/ffi/cmake/livecacheConfig.cmake.in" >"$lib/cmake/livecache/livecacheConfig.cmake"
sed -e "s|@VERSION@|$VERSION|g" \
  "$ROOT/ffi/cmake/livecacheConfigVersion.cmake.in" >"$lib/cmake/livecache/livecacheConfigVersion.cmake"

echo "installed livecache $VERSION into $DESTDIR$PREFIX:"
(cd "$DESTDIR$PREFIX" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort | sed 's/^/  /')
