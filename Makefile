# mixedrs: the README's commands. `make demo` and `make test` install whatever is missing first.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
# A persistent cargo target dir makes reinstalls take seconds instead of minutes.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/mixedrs/cargo-target
R_LIB ?= $(shell Rscript -e 'cat(.libPaths()[1])' 2>/dev/null)

.PHONY: deps install demo test test-rust test-r test-spark lint check cran bench bench-sql docs clean

deps:
	@bash tools/install-deps.sh

install: deps
	R CMD INSTALL --no-multiarch .

demo: install
	Rscript bench/demo.R

test: install lint test-rust test-r

# One clippy run covers the library with its R binding, the unit and the integration tests.
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --features r -- -D warnings

# With the R binding's feature, as the package build has it: the tests then reuse that build's
# compiled dependencies (faer above all) instead of compiling them again.
test-rust:
	cargo test --release --features r

# The whole R suite, including the PostgreSQL and (small) Spark tests: their helpers
# (tests/testthat/helper-databases.R) start a throwaway cluster and a local Spark and stop them.
test-r:
	Rscript -e 'testthat::test_dir("tests/testthat", package = "mixedrs", load_package = "installed", stop_on_failure = TRUE)'

# Only the Spark test files (those whose names contain "spark"), on SPARK_ROWS rows instead of a
# few thousand; here a missing Java or pyspark virtualenv is an error rather than a skip.
SPARK_ROWS ?= 2000000
test-spark: install
	MIXEDRS_SPARK_ROWS=$(SPARK_ROWS) MIXEDRS_REQUIRE_SPARK=true Rscript -e 'testthat::test_dir("tests/testthat", filter = "spark", package = "mixedrs", load_package = "installed", stop_on_failure = TRUE)'

docs:
	Rscript -e 'roxygen2::roxygenise(load_code = roxygen2::load_source)'

check: deps
	rm -rf mixedrs.Rcheck mixedrs_*.tar.gz
	R CMD build .
	_R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual mixedrs_*.tar.gz

# The CRAN submission: `R CMD build` vendors the Rust crates into the tarball (cleanup runs
# tools/vendor.sh), whose install then needs no network; then the --as-cran check of that tarball
# (the manual only where pdflatex exists; the incoming checks that need the network skipped).
# Compiles the crates from scratch with two jobs, as CRAN does: ~10 minutes.
cran:
	@bash tools/install-deps.sh --cran
	rm -rf mixedrs.Rcheck mixedrs_*.tar.gz
	R CMD build .
	@tar -tzf mixedrs_*.tar.gz | grep -qx 'mixedrs/src/rust/vendor.tar.xz' || { \
	  echo "cran: the tarball lacks src/rust/vendor.tar.xz:"; \
	  tar -xzOf mixedrs_*.tar.gz mixedrs/src/rust/VENDORING-FAILED; exit 1; }
	_R_CHECK_FORCE_SUGGESTS_=false _R_CHECK_CRAN_INCOMING_REMOTE_=false _R_CHECK_SYSTEM_CLOCK_=false \
	  R CMD check --as-cran $(if $(shell command -v pdflatex),,--no-manual) mixedrs_*.tar.gz

bench: install
	Rscript bench/bench.R
	Rscript bench/inference.R
	Rscript bench/links.R
	Rscript bench/scaling.R
	Rscript bench/crossed-slopes.R

# lmm() on tables that stay in the database (bench/sql.R): a throwaway PostgreSQL cluster (and, when
# BENCH_SPARK_ROWS is set, a local Spark) generates crossed tables of BENCH_SQL_ROWS rows; times
# the queries and the local fit, the bytes moved to R and R's peak memory, beside lmm() and lmer()
# on the pulled rows. Writes a section of bench/RESULTS.md and the README's table. More options
# (designs, sizes kept in memory, repetitions) in BENCH_SQL_ARGS: see the head of bench/sql.R.
BENCH_SQL_ROWS ?= 1e5,1e6
BENCH_SPARK_ROWS ?=
BENCH_SQL_ARGS ?=
bench-sql: install
	Rscript bench/sql.R --rows=$(BENCH_SQL_ROWS) $(if $(BENCH_SPARK_ROWS),--spark=$(BENCH_SPARK_ROWS)) $(BENCH_SQL_ARGS)

clean:
	rm -rf mixedrs.Rcheck mixedrs_*.tar.gz src/*.o src/*.so src/rust-target src/Makevars src/.cargo src/rust/vendor
