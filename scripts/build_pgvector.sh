#!/usr/bin/env bash
# Build pgvector 0.8.6 (third_party/pgvector, PostgreSQL License) for the PostgreSQL that the
# `pgserver` wheel bundles (16, with pgvector 0.6.2) and install it there, inside the venv:
# the store tests then exercise pgvector 0.8's iterative index scans. Portable build
# (OPTFLAGS="", no -march=native): the CPUs of a developer's machine and CI's differ.
# Usage: scripts/build_pgvector.sh VENV_PYTHON   (does nothing when pgserver is absent or
# already has pgvector >= 0.8; says why and exits 0 when there is no compiler)
set -euo pipefail
py="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
pginstall="$("$py" -c 'import importlib.util as u, pathlib as p; s = u.find_spec("pgserver"); print(p.Path(s.origin).parent / "pginstall" if s else "")')"
if [ -z "$pginstall" ] || [ ! -x "$pginstall/bin/postgres" ]; then
  echo "pgserver not installed: no local PostgreSQL to add pgvector 0.8 to"; exit 0
fi
control="$pginstall/share/postgresql/extension/vector.control"
if grep -q "default_version = '0\.\(8\|9\)" "$control" 2>/dev/null; then exit 0; fi
command -v gcc >/dev/null && command -v make >/dev/null || {
  echo "no gcc/make: keeping pgserver's pgvector 0.6.2 (the store falls back to exact scans)"; exit 0; }
chmod +x "$pginstall/bin/pg_config"
build="$(mktemp -d)"
cp -r "$root/third_party/pgvector/." "$build"
make -s -C "$build" -j2 PG_CONFIG="$pginstall/bin/pg_config" OPTFLAGS="" with_llvm=no >/dev/null
make -s -C "$build" install PG_CONFIG="$pginstall/bin/pg_config" OPTFLAGS="" with_llvm=no >/dev/null
rm -rf "$build"
echo "pgvector $(sed -n "s/default_version = '\(.*\)'/\1/p" "$control") installed into $pginstall"
