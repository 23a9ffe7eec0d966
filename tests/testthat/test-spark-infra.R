# The tests' Spark set-up (helper-databases.R, spark_bridge.py): a local SparkSession from the
# project's pyspark virtualenv, R data frames registered as views with every double intact,
# query results brought back without rounding, and GROUP BY sums that match R's. The data size
# follows MIXEDRS_SPARK_ROWS (`make test-spark` runs this file with a large one).

spark_awkward_frame <- function() {
  data.frame(
    k = 1:12,
    x = c(1e-300, 1 / 3, 123456789.123456789, -0, 2^-1074, .Machine$double.xmax, 0.1,
          -pi * 1e200, NA, NaN, Inf, -Inf),
    s = c("plain", "tab\there", "quote\"s", "back\\slash", "new\nline", NA, "",
          "\u00fcn\u00efc\u00f6d\u00e9", "comma,semi;", "\"\"", "NULL", "NA"),
    i = c(1L, NA, .Machine$integer.max, -.Machine$integer.max, 0L, -1L, 7L, 8L, 9L, 10L,
          11L, 12L),
    b = c(TRUE, FALSE, NA, TRUE, FALSE, TRUE, TRUE, FALSE, NA, TRUE, FALSE, TRUE),
    f = factor(rep(c("u", "v", "w"), 4)),
    stringsAsFactors = FALSE
  )
}

# TRUE where a and b hold the same double bit for bit (NA and NaN compared as such).
spark_same_doubles <- function(a, b) {
  num <- !is.na(a) & !is.na(b)
  bits <- function(v) writeBin(v, raw(), endian = "little")
  length(a) == length(b) && identical(is.na(a) & !is.nan(a), is.na(b) & !is.nan(b)) &&
    identical(is.nan(a), is.nan(b)) && identical(bits(a[num]), bits(b[num]))
}

test_that("spark_register_df and spark_sql_runner carry every value through exactly", {
  spark <- spark_test_session()
  run <- spark_sql_runner(spark)
  d <- spark_awkward_frame()
  spark_register_df(spark, "infra_roundtrip", d)
  back <- run("SELECT * FROM infra_roundtrip ORDER BY k")
  expect_identical(names(back), names(d))
  expect_true(spark_same_doubles(back$x, d$x))
  expect_identical(1 / back$x[4], -Inf)
  expect_identical(back$s, d$s)
  expect_identical(back$i, d$i)
  expect_identical(back$b, d$b)
  expect_identical(back$f, as.character(d$f))
  # Values computed in Spark come back as computed: 64-bit counts as doubles, NULL as NA.
  agg <- run(paste("SELECT COUNT(*) AS n, SUM(CASE WHEN k <= 3 THEN x END) AS s3,",
                   "CAST(NULL AS DOUBLE) AS z, MAX(i) AS mi FROM infra_roundtrip"))
  expect_identical(agg$n, 12)
  expect_identical(agg$s3, sum(d$x[1:3]))
  expect_identical(agg$z, NA_real_)
  expect_identical(agg$mi, .Machine$integer.max)
  empty <- run("SELECT x, s, i FROM infra_roundtrip WHERE k > 100")
  expect_identical(empty, data.frame(x = double(), s = character(), i = integer(),
                                     stringsAsFactors = FALSE))
})

test_that("the Spark helpers refuse what they cannot carry exactly, saying so", {
  spark <- spark_test_session()
  run <- spark_sql_runner(spark)
  expect_error(run("SELECT current_date() AS d"), "column d: Spark type date")
  expect_error(run("SELECT CAST(9007199254740993 AS BIGINT) AS big"), "beyond 2\\^53")
  expect_error(spark_register_df(spark, "infra_bad", data.frame(d = Sys.Date())),
               "column d is of class Date")
  expect_error(spark_register_df(spark, "infra_bad", data.frame(s = "\\N")), "\\\\N")
  expect_error(spark_register_df(spark, "bad name", data.frame(x = 1)), "view name")
  expect_error(run(c("SELECT 1", "SELECT 2")), "one SQL string")
})

test_that("a GROUP BY SUM in Spark equals R's rowsum", {
  spark <- spark_test_session()
  run <- spark_sql_runner(spark)
  set.seed(1602)
  n <- spark_test_rows(5000L)
  levels <- max(37L, n %/% 50L)
  d <- data.frame(g = sample.int(levels, n, replace = TRUE), x = rnorm(n, mean = 1e6),
                  w = rexp(n), k = sample.int(5L, n, replace = TRUE))
  spark_register_df(spark, "infra_groups", d)
  got <- run(paste(
    "SELECT g, SUM(w * x) AS swx, SUM(w * x * x) AS swxx, SUM(k) AS sk, COUNT(*) AS n",
    "FROM infra_groups GROUP BY g ORDER BY g"))
  ref <- rowsum(cbind(swx = d$w * d$x, swxx = d$w * d$x * d$x, sk = d$k, n = 1), d$g)
  expect_identical(got$g, as.integer(rownames(ref)))
  # All terms are positive, so both sums are accurate to about (group size) * 2^-53 relative
  # whatever the order of addition (~1e-14 for the default 5000 rows and for 50 rows a group
  # at any size); 1e-12 leaves room and still catches a value that lost digits on the way.
  rel <- function(a, b) max(abs(a / b - 1))
  expect_lt(rel(got$swx, ref[, "swx"]), 1e-12)
  expect_lt(rel(got$swxx, ref[, "swxx"]), 1e-12)
  expect_identical(got$sk, unname(ref[, "sk"]))
  expect_identical(got$n, unname(ref[, "n"]))
})

test_that("the session's JVM is stopped and its directory removed when a run ends with a failure", {
  spark_test_session() # skips like the other tests where Java or the venv is missing
  run_dir <- tempfile("infra-spark-run-")
  dir.create(run_dir)
  on.exit(unlink(run_dir, recursive = TRUE), add = TRUE)
  file.copy(test_path(c("helper-databases.R", "spark_bridge.py")), run_dir)
  report <- file.path(run_dir, "after-teardown.rds")
  # The inner test registers its check in the teardown environment before the session starts,
  # so that the check runs after the helpers' own clean-up (deferred actions run last in, first
  # out) and sees what that left behind.
  writeLines(c(
    "test_that('a failing test that uses Spark', {",
    "  seen <- new.env()",
    sprintf(paste0("  withr::defer(saveRDS(list(dir = seen$dir, pid = seen$pid, dir_left = ",
                   "dir.exists(seen$dir), jvm_left = dir.exists(file.path('/proc', seen$pid))),",
                   " '%s'), envir = teardown_env())"), report),
    "  spark_test_session()",
    "  seen$dir <- db_test_state$spark$dir",
    "  seen$pid <- reticulate::import('pyspark')$SparkContext$`_gateway`$proc$pid",
    "  expect_true(FALSE)",
    "})"), file.path(run_dir, "test-fails.R"))
  out <- suppressWarnings(system2(
    file.path(R.home("bin"), "Rscript"),
    c("-e", shQuote(sprintf(
      "testthat::test_dir('%s', reporter = 'summary', stop_on_failure = TRUE)", run_dir))),
    stdout = TRUE, stderr = TRUE))
  expect_false(is.null(attr(out, "status")))  # the inner run failed, as it should
  expect_true(file.exists(report))
  seen <- readRDS(report)
  expect_match(basename(seen$dir), "^mixedrs-spark-")
  expect_gt(seen$pid, 0)
  expect_false(seen$dir_left)
  expect_false(seen$jvm_left)
})
