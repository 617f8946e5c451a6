#!/usr/bin/env bash
# package.sh — builds the Debian package of tlsp (tlsp_VERSION-1_ARCH.deb)
# from the build tree $TLSP_BUILD_DIR (default build/; configured with the
# install prefix /usr, so nothing but the `tlsp` binary is rebuilt when it is
# up to date), then runs lintian on it and prints its findings. Prints the
# path of the .deb on its last line. Exit 1 when lintian reports an error or
# a warning that packaging/lintian-overrides does not accept with a reason
# (docs/packaging.md lists them); TLSP_PACKAGE_LINTIAN=0 skips lintian.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${TLSP_BUILD_DIR:-$root/build}
out=$build/package

for tool in cmake cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "package.sh: \`$tool\` is missing (scripts/bootstrap.sh installs it)" >&2; exit 2; }
done

cmake -S "$root" -B "$build" -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$build" -j"${TLSP_JOBS:-2}" --target tlsp
rm -rf "$out"
(cd "$build" && cpack -G DEB -B "$out" >"$out.log" 2>&1) || { cat "$out.log" >&2; exit 1; }
deb=$(find "$out" -maxdepth 1 -name 'tlsp_*.deb' | head -n 1)
[ -n "$deb" ] || { cat "$out.log" >&2; echo "package.sh: cpack made no .deb" >&2; exit 1; }

status=0
if [ "${TLSP_PACKAGE_LINTIAN:-1}" != 0 ]; then
  if command -v lintian >/dev/null; then
    echo "package.sh: lintian $(basename "$deb"):" >&2
    findings=$(lintian --info --show-overrides --tag-display-limit 0 "$deb" 2>&1 || true)
    if [ -n "$findings" ]; then printf '%s\n' "$findings" | sed 's/^/  /' >&2; else echo "  (no findings)" >&2; fi
    if printf '%s\n' "$findings" | grep -Eq '^[EW]: '; then
      echo "package.sh: lintian found errors or warnings not accepted in packaging/lintian-overrides" >&2
      status=1
    fi
  else
    echo "package.sh: lintian is not installed; not checked" >&2
  fi
fi
echo "$deb"
exit "$status"
