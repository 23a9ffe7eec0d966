# A database that fails part-way through a fit from a table: an ordinary R
# error naming the query and the engine, whichever query it is.

test_that("a query failing part-way is an error naming it (SQLite)", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  DBI::dbWriteTable(con, "sleep", transform(lme4::sleepstudy, Subject = as.character(Subject)))
  rows <- sql_glmm_frame(n = 400L)
  DBI::dbWriteTable(con, "events", rows)
  failing_source <- function(table, fail_at) {
    calls <- 0L
    sql_source(function(sql) {
      calls <<- calls + 1L
      if (calls == fail_at) stop("server closed the connection unexpectedly")
      DBI::dbGetQuery(con, sql)
    }, table)
  }
  # every query of an lmm() and a glmm() fit, in turn
  n_lmm <- 0L
  counting <- sql_source(function(sql) {
    n_lmm <<- n_lmm + 1L
    DBI::dbGetQuery(con, sql)
  }, "sleep")
  ok <- lmm(Reaction ~ Days + (Days | Subject), data = counting)
  expect_gt(n_lmm, 3L)
  for (k in seq_len(n_lmm)) {
    expect_error(lmm(Reaction ~ Days + (Days | Subject), data = failing_source("sleep", k)),
                 "the query for .* failed on table (sleep|events): server closed the connection")
  }
  for (k in 1:4) {
    expect_error(glmm(count ~ x + (1 | g), family = poisson,
                      data = failing_source("events", k)),
                 "the query for .* failed on table (sleep|events): server closed the connection")
  }
  # a closed connection
  con2 <- sql_test_con()
  DBI::dbWriteTable(con2, "sleep", lme4::sleepstudy)
  tab <- dplyr::tbl(con2, "sleep")
  DBI::dbDisconnect(con2)
  expect_error(lmm(Reaction ~ Days + (Days | Subject), data = tab), "failed on SQLite")
})

test_that("a PostgreSQL server connection terminated part-way is an error naming the query", {
  skip_if_not_installed("dbplyr")
  admin <- pg_test_connection()
  pg_copy_table(admin, "fail_sleep", transform(lme4::sleepstudy, Subject = as.character(Subject)))
  for (k in 2:4) {
    con <- pg_test_connect()
    pid <- DBI::dbGetQuery(con, "SELECT pg_backend_pid() AS pid")$pid
    calls <- 0L
    src <- sql_source(function(sql) {
      calls <<- calls + 1L
      # the server ends this session before the k-th query
      if (calls == k) DBI::dbGetQuery(admin, paste0("SELECT pg_terminate_backend(", pid, ")"))
      DBI::dbGetQuery(con, sql)
    }, "fail_sleep", dialect = "postgres")
    # RPostgreSQL only warns and returns NULL: the error says so, with the
    # driver's warning
    expect_error(suppressWarnings(lmm(Reaction ~ Days + (Days | Subject), data = src)),
                 "the query for .* failed on table fail_sleep: it returned NULL.*driver warned: Could not create execute")
    expect_equal(calls, k)
    try(DBI::dbDisconnect(con), silent = TRUE)
  }
  # the test server still works
  expect_equal(DBI::dbGetQuery(admin, "SELECT COUNT(*) AS n FROM fail_sleep")$n, 180)
})
