#!/usr/bin/env bash
# Installs what building and testing mixedrs needs and is missing: R and the R packages (from
# Debian), pandoc (for the vignette), a Rust toolchain (rustc >= 1.89, via rustup), and the
# database engines the tests start themselves: the PostgreSQL 15 server and Java 17 (Debian), and
# pyspark in a virtualenv (tools/spark-venv.sh, from PyPI). Safe to run again: it only installs
# what is absent (a second run takes a few seconds). With --cran, also what
# `R CMD check --as-cran` needs (checkbashisms).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root or sudo to install Debian packages" >&2; exit 1; fi
fi

# Debian package -> R package it provides.
R_PKGS="r-cran-testthat:testthat r-cran-lme4:lme4 r-cran-lmertest:lmerTest r-cran-pbkrtest:pbkrtest
r-cran-roxygen2:roxygen2 r-cran-nlme:nlme r-cran-matrix:Matrix r-cran-pkgbuild:pkgbuild
r-cran-pkgload:pkgload r-cran-statmod:statmod r-cran-generics:generics
r-cran-broom.mixed:broom.mixed r-cran-emmeans:emmeans r-cran-tibble:tibble
r-cran-numderiv:numDeriv r-cran-glmmtmb:glmmTMB r-cran-ggplot2:ggplot2 r-cran-knitr:knitr r-cran-rmarkdown:rmarkdown r-cran-lattice:lattice
r-cran-car:car r-cran-multcomp:multcomp r-cran-boot:boot r-cran-mass:MASS r-cran-optimx:optimx r-cran-dfoptim:dfoptim
r-cran-dbi:DBI r-cran-dbplyr:dbplyr r-cran-dplyr:dplyr r-cran-rsqlite:RSQLite
r-cran-rpostgresql:RPostgreSQL r-cran-reticulate:reticulate r-cran-withr:withr"
# Debian packages that are programs, not R packages -> the command they provide
# (pandoc renders the vignette in R CMD build).
SYS_PKGS="pandoc:pandoc"

missing=""
have_r=1
if ! command -v Rscript >/dev/null 2>&1 || [ ! -e "$(R RHOME 2>/dev/null)/etc/Makeconf" ]; then
  have_r=0
  missing="r-base-dev"
fi
if [ "$have_r" -eq 0 ]; then
  for pair in $R_PKGS; do missing="$missing ${pair%%:*}"; done
else
  # One R session checks every package and prints the Debian names of the missing ones.
  missing="$missing $(Rscript -e 'for (p in commandArgs(TRUE)) {
      parts <- strsplit(p, ":")[[1]]
      if (!requireNamespace(parts[2], quietly = TRUE)) cat(parts[1], "")
    }' $R_PKGS 2>/dev/null)"
fi
for pair in $SYS_PKGS; do
  command -v "${pair#*:}" >/dev/null 2>&1 || missing="$missing ${pair%%:*}"
done
# The engines the tests start (tests/testthat/helper-databases.R): the PostgreSQL server programs
# (Debian keeps them off PATH, in /usr/lib/postgresql/VERSION/bin), Java 17 or later for Spark 4,
# and Python's venv module for the pyspark virtualenv.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing="$missing postgresql"
java_major="$(java -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1)" || java_major=0
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || missing="$missing openjdk-17-jre-headless"
/usr/bin/python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$missing python3-venv"
missing="$(echo $missing)"
if [ -n "$missing" ]; then
  echo "install-deps: installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

# Rust: rustup's toolchain in ~/.cargo/bin (Debian's rustc is too old for argmin).
export PATH="$HOME/.cargo/bin:$PATH"
need_rust=1
if command -v rustc >/dev/null 2>&1; then
  ver=$(rustc --version | awk '{print $2}')
  major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
  if [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 89 ]; }; then need_rust=0; fi
fi
if [ "$need_rust" -eq 1 ]; then
  if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install stable --profile minimal && rustup default stable
  else
    echo "install-deps: installing Rust with rustup"
    command -v curl >/dev/null 2>&1 || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq curl; }
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
fi
for tool in rustfmt clippy; do
  if ! cargo "${tool/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$tool" >/dev/null 2>&1 || true
  fi
done
# `install-deps.sh --cran` (make cran): R CMD check --as-cran also needs checkbashisms.
if [ "${1:-}" = "--cran" ] && ! command -v checkbashisms >/dev/null 2>&1; then
  echo "install-deps: installing devscripts (checkbashisms, for R CMD check --as-cran)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends devscripts
fi
# Spark for the tests: pyspark from PyPI in a virtualenv. Without it (PyPI unreachable) the
# Spark tests skip, saying so, and everything else goes on.
spark="Spark: no pyspark virtualenv (the Spark tests will skip)"
if spark_py="$(bash "$(cd "$(dirname "$0")" && pwd)/spark-venv.sh")"; then
  spark="pyspark in $(dirname "$(dirname "$spark_py")")"
else
  echo "install-deps: could not make the pyspark virtualenv (see above); the Spark tests will skip" >&2
fi
command -v java >/dev/null 2>&1 ||
  { echo "install-deps: no java after installing openjdk-17-jre-headless; the Spark tests will skip" >&2
    spark="Spark: no java (the Spark tests will skip)"; }
echo "install-deps: R $(Rscript -e 'cat(format(getRversion()))'), $(rustc --version), $spark"
