#!/bin/sh
# Vendors the Rust crates the R package compiles into src/rust/vendor.tar.xz (CRAN builds offline),
# and lists their authors and licences in inst/AUTHORS. Run from the package root of a build copy:
# the `cleanup` script calls it while `R CMD build` prepares the tarball. Needs cargo and either the
# network or a cargo cache holding every crate of Cargo.lock.
#
# Crates that no CRAN platform compiles (dev-dependencies, Windows-only and other target-specific
# ones) are kept as stubs: their Cargo.toml only, which is all cargo reads of them to check the
# lock file, so that Cargo.toml and Cargo.lock ship unchanged and `cargo build --locked` holds.
set -eu

out="src/rust/vendor.tar.xz"
manifest="${MIXEDRS_MANIFEST:-Cargo.toml}"
[ -f "$manifest" ] || { echo "vendor.sh: no $manifest here ($(pwd))" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 || PATH="$PATH:$HOME/.cargo/bin"
command -v cargo >/dev/null 2>&1 || { echo "vendor.sh: cargo not found" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mixedrs-vendor.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "vendor.sh: cargo vendor ($(cargo --version))"
cargo vendor --quiet --locked --versioned-dirs --manifest-path "$manifest" "$work/vendor" >/dev/null

# What the library (feature `r`) compiles on CRAN's Linux and macOS machines, build scripts and
# procedural macros included: "name-version", the --versioned-dirs directory names.
cargo tree --quiet --locked --manifest-path "$manifest" --features r -e normal,build \
  --target x86_64-unknown-linux-gnu --target aarch64-unknown-linux-gnu \
  --target powerpc64le-unknown-linux-gnu --target s390x-unknown-linux-gnu \
  --target x86_64-apple-darwin --target aarch64-apple-darwin \
  --prefix none --format '{p}' | sed 's/ (.*//; s/ v/-/' | sort -u > "$work/keep"

stubbed=0
for dir in "$work"/vendor/*/; do
  crate=$(basename "$dir")
  if grep -qx "$crate" "$work/keep"; then continue; fi
  sum=$(sed -n 's/.*"package":"\([0-9a-f]*\)".*/\1/p' "$dir/.cargo-checksum.json")
  find "$dir" -mindepth 1 -maxdepth 1 ! -name Cargo.toml -exec rm -rf {} +
  mkdir "$dir/src"
  : > "$dir/src/lib.rs"
  printf '{"files":{},"package":"%s"}' "$sum" > "$dir/.cargo-checksum.json"
  stubbed=$((stubbed + 1))
done
echo "vendor.sh: $(ls "$work/vendor" | wc -l | tr -d ' ') crates, $stubbed of them stubs (not compiled on Linux/macOS)"

# The compiled crates' own tests, examples and test data are not compiled either: drop them, and
# their entries from the crate's checksum list (one line of JSON: "path":"sha256" pairs).
for dir in "$work"/vendor/*/; do
  pruned=0
  for sub in tests examples test_data; do
    if [ -d "$dir/$sub" ]; then rm -rf "${dir:?}/$sub"; pruned=1; fi
  done
  if [ "$pruned" -eq 1 ]; then
    sed -E 's#"(tests|examples|test_data)/[^"]*":"[0-9a-f]*",?##g; s#,\}#}#g' \
      "$dir/.cargo-checksum.json" > "$work/checksum" && mv "$work/checksum" "$dir/.cargo-checksum.json"
  fi
done

# Authors and licences of the compiled crates (CRAN wants the copyright holders of bundled code).
mkdir -p inst
{
  echo "The package bundles, in src/rust/vendor.tar.xz, the source code of these Rust crates,"
  echo "with the authors and licences their Cargo.toml files declare:"
  echo
  for crate in $(cat "$work/keep"); do
    toml="$work/vendor/$crate/Cargo.toml"
    [ -f "$toml" ] || continue
    awk -v crate="$crate" '
      /^\[/ { inpkg = ($0 == "[package]") }
      inpkg && /^authors *= *\[/ { collecting = 1; sub(/^authors *= *\[/, "") }
      collecting {
        line = $0; stop = (line ~ /\]/); sub(/\].*/, "", line)
        n = split(line, parts, /"/)
        for (i = 2; i <= n; i += 2) authors = authors (authors == "" ? "" : ", ") parts[i]
        if (stop) collecting = 0
      }
      inpkg && /^license *= */ { lic = $0; sub(/^license *= *"/, "", lic); sub(/".*/, "", lic) }
      inpkg && /^repository *= */ { repo = $0; sub(/^repository *= *"/, "", repo); sub(/".*/, "", repo) }
      END {
        if (authors == "") authors = "its developers" (repo == "" ? "" : ", " repo)
        if (lic == "") lic = "licence in its licence file"
        printf "- %s: %s (%s)\n", crate, authors, lic
      }' "$toml"
  done
} > inst/AUTHORS

# With GNU tar, a reproducible archive (same bytes for the same crates): fixed order, owner, times.
if tar --version 2>/dev/null | grep -q 'GNU tar'; then
  fixed="--sort=name --mtime=2000-01-01T00:00Z --owner=0 --group=0 --numeric-owner"
else
  fixed=""
fi
# shellcheck disable=SC2086
( cd "$work" && tar $fixed -cf - vendor ) | xz -9 -T1 > "$out"
echo "vendor.sh: wrote $out ($(du -k "$out" | cut -f1) kB) and inst/AUTHORS"
