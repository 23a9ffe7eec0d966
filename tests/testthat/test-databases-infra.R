# The tests' PostgreSQL set-up (helper-databases.R): a throwaway cluster on loopback, tables
# loaded with COPY so that every double arrives as itself, GROUP BY sums that match R's, and a
# cluster that is gone when the test run ends, also after a failing test.

# Doubles that lose digits when printed with 15 significant digits, or that are special: the
# smallest normal and subnormal, 1/3, a value with 17 significant digits, -0, the largest double.
awkward_frame <- function() {
  data.frame(
    k = 1:12,
    x = c(1e-300, 1 / 3, 123456789.123456789, -0, 2^-1074, .Machine$double.xmax, 0.1,
          -pi * 1e200, NA, NaN, Inf, -Inf),
    s = c("plain", "tab\there", "quote\"s", "back\\slash", "new\nline", NA, "",
          "\u00fcn\u00efc\u00f6d\u00e9", "comma,semi;", "\\N", "NULL", "NA"),
    i = c(1L, NA, .Machine$integer.max, -.Machine$integer.max, 0L, -1L, 7L, 8L, 9L, 10L,
          11L, 12L),
    b = c(TRUE, FALSE, NA, TRUE, FALSE, TRUE, TRUE, FALSE, NA, TRUE, FALSE, TRUE),
    stringsAsFactors = FALSE
  )
}

# TRUE where a and b hold the same double bit for bit (NA and NaN compared as such).
same_doubles <- function(a, b) {
  na_a <- is.na(a) & !is.nan(a)
  na_b <- is.na(b) & !is.nan(b)
  nan_a <- is.nan(a)
  nan_b <- is.nan(b)
  num <- !is.na(a) & !is.na(b)
  bits <- function(v) matrix(writeBin(v, raw(), endian = "little"), nrow = 8L)
  length(a) == length(b) && identical(na_a, na_b) && identical(nan_a, nan_b) &&
    identical(bits(a[num]), bits(b[num]))
}

test_that("the test data really are awkward: 15 significant digits would change them", {
  d <- awkward_frame()
  finite <- d$x[is.finite(d$x) & d$x != 0]
  fifteen <- as.numeric(sprintf("%.15g", finite))
  expect_gt(sum(fifteen != finite), 3L)
  expect_identical(1 / d$x[4], -Inf) # -0 is -0
})

test_that("pg_copy_table round-trips doubles, text, integers and logicals bit for bit", {
  con <- pg_test_connection()
  d <- awkward_frame()
  pg_copy_table(con, "infra_roundtrip", d)
  back <- DBI::dbGetQuery(con, "SELECT * FROM infra_roundtrip ORDER BY k")
  expect_identical(names(back), names(d))
  expect_true(same_doubles(back$x, d$x))
  expect_identical(1 / back$x[4], -Inf)
  expect_identical(back$s, d$s)
  expect_identical(back$i, d$i)
  expect_identical(back$b, d$b)
  types <- DBI::dbGetQuery(con, paste(
    "SELECT column_name, data_type FROM information_schema.columns",
    "WHERE table_name = 'infra_roundtrip' ORDER BY ordinal_position"))
  expect_identical(types$data_type,
                   c("integer", "double precision", "text", "integer", "boolean"))
  # Loading again replaces the table rather than appending to it.
  pg_copy_table(con, "infra_roundtrip", d[1:3, ])
  expect_equal(DBI::dbGetQuery(con, "SELECT count(*) AS n FROM infra_roundtrip")$n, 3)
})

test_that("pg_copy_table refuses columns it cannot type and bad arguments", {
  con <- pg_test_connection()
  expect_error(pg_copy_table(con, "infra_bad", data.frame(d = Sys.Date())),
               "column d .*Date")
  expect_error(pg_copy_table(con, "infra_bad", list(x = 1)), "data frame")
  expect_error(pg_copy_table(con, c("a", "b"), data.frame(x = 1)), "one table name")
})

test_that("the cluster listens on 127.0.0.1 only, with its socket in its own directory", {
  con <- pg_test_connection()
  expect_identical(DBI::dbGetQuery(con, "SHOW listen_addresses")[[1]], "127.0.0.1")
  socket_dir <- DBI::dbGetQuery(con, "SHOW unix_socket_directories")[[1]]
  data_dir <- DBI::dbGetQuery(con, "SHOW data_directory")[[1]]
  expect_identical(dirname(socket_dir), dirname(data_dir))
  expect_match(basename(dirname(data_dir)), "^mixedrs-pg-")
  expect_identical(pg_test_params()$host, "127.0.0.1")
  expect_identical(DBI::dbGetQuery(con, "SHOW port")[[1]],
                   as.character(pg_test_params()$port))
})

test_that("a GROUP BY SUM in PostgreSQL equals R's rowsum", {
  con <- pg_test_connection()
  set.seed(1601)
  n <- 5000L
  d <- data.frame(g = sprintf("g%02d", sample.int(37L, n, replace = TRUE)),
                  x = rnorm(n, mean = 1e6), w = rexp(n), k = sample.int(5L, n, TRUE),
                  stringsAsFactors = FALSE)
  pg_copy_table(con, "infra_groups", d)
  got <- DBI::dbGetQuery(con, paste(
    "SELECT g, SUM(w * x) AS swx, SUM(w * x * x) AS swxx, SUM(k) AS sk, COUNT(*) AS n",
    "FROM infra_groups GROUP BY g ORDER BY g"))
  ref <- rowsum(cbind(swx = d$w * d$x, swxx = d$w * d$x * d$x, sk = d$k, n = 1), d$g)
  expect_identical(got$g, rownames(ref))
  # All terms are positive, so both sums are accurate to about (group size) * 2^-53 ~ 3e-14
  # relative whatever the order of addition; 1e-12 leaves room and still catches any value
  # that lost digits on the way (15 digits would be off by ~1e-15 per term, not per sum, so the
  # exact load is checked above, bit for bit).
  rel <- function(a, b) max(abs(a / b - 1))
  expect_lt(rel(got$swx, ref[, "swx"]), 1e-12)
  expect_lt(rel(got$swxx, ref[, "swxx"]), 1e-12)
  expect_equal(as.numeric(got$sk), unname(ref[, "sk"]))
  expect_equal(as.numeric(got$n), unname(ref[, "n"]))
})

test_that("a private connection sees the shared cluster's tables", {
  con <- pg_test_connection()
  pg_copy_table(con, "infra_private", data.frame(x = c(1 / 3, 2 / 3)))
  other <- pg_test_connect()
  on.exit(DBI::dbDisconnect(other))
  expect_identical(DBI::dbGetQuery(other, "SELECT x FROM infra_private ORDER BY x")$x,
                   c(1 / 3, 2 / 3))
})

test_that("the cluster is stopped and its directory removed when a run ends with a failure", {
  pg_test_connection() # skips like the other tests where PostgreSQL is missing
  run_dir <- tempfile("infra-run-")
  dir.create(run_dir)
  on.exit(unlink(run_dir, recursive = TRUE), add = TRUE)
  file.copy(test_path("helper-databases.R"), run_dir)
  report <- file.path(run_dir, "cluster.rds")
  writeLines(c(
    "test_that('a failing test that uses the cluster', {",
    "  con <- pg_test_connection()",
    sprintf("  saveRDS(list(dir = db_test_state$pg$dir, params = pg_test_params()), '%s')",
            report),
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
  expect_match(basename(seen$dir), "^mixedrs-pg-")
  expect_false(dir.exists(seen$dir))
  refused <- tryCatch({
    con <- DBI::dbConnect(RPostgreSQL::PostgreSQL(), host = seen$params$host,
                          port = seen$params$port, user = "postgres", dbname = "postgres")
    DBI::dbDisconnect(con)
    FALSE
  }, error = function(e) TRUE)
  expect_true(refused)
})
