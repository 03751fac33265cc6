#!/usr/bin/env bash
# Installs the S3 server the tests run (versitygw, an S3 gateway over a
# directory) unless it is there already. The binary goes to
# $WALSHIP_S3_SERVER when that is set, else /var/cache/walship/bin/versitygw,
# outside the clone so that it survives a fresh checkout.
# Usage: scripts/install-s3-server.sh     (idempotent; needs Go)
set -euo pipefail

VERSION=v1.8.0
MODULE=github.com/versity/versitygw/cmd/versitygw
target=${WALSHIP_S3_SERVER:-/var/cache/walship/bin/versitygw}

if [ -x "$target" ] && "$target" --version >/dev/null 2>&1; then
  echo "s3 server: $target is installed"
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "install-s3-server: go is needed to build $MODULE@$VERSION" >&2; exit 1; }
dir=$(dirname "$target")
mkdir -p "$dir"
echo "s3 server: building $MODULE@$VERSION into $dir (a few minutes the first time)"
# go install with a version builds outside any module, ours included.
(cd / && GOBIN="$dir" go install "$MODULE@$VERSION")
if [ "$(basename "$target")" != versitygw ]; then
  mv -f "$dir/versitygw" "$target"
fi
"$target" --version >/dev/null
echo "s3 server: $target is installed"
