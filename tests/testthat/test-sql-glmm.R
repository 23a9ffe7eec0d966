# glmm(data = <database table>): binomial and Poisson models fitted to the
# rows grouped by covariate pattern in SQLite and PostgreSQL (a real server
# started by helper-databases.R), against glmm() and lme4's glmer() on the
# same rows in memory.

check_glmm_backend <- function(tab, rows) {
  # 0/1 response, a factor, a covariate, a correlated slope, crossed factors,
  # NULLs dropped (na.omit) and counted
  res <- expect_sql_glmm_matches(y ~ f + x + (x | g) + (1 | h), tab, rows, binomial)
  used <- stats::complete.cases(rows[c("y", "f", "x", "g", "h")])
  expect_identical(nobs(res$sql), sum(used))
  expect_lt(res$sql$table$patterns, sum(used) / 2)
  ref <- lme4::glmer(y ~ f + x + (x | g) + (1 | h), family = binomial, data = rows,
                     control = lme4::glmerControl(optimizer = "bobyqa",
                                                  optCtrl = list(rhoend = 1e-9)))
  expect_gt(as.numeric(logLik(res$sql)), as.numeric(logLik(ref)) - 1e-6)
  expect_equal(as.numeric(logLik(res$sql)), as.numeric(logLik(ref)), tolerance = 1e-6)
  expect_equal(fixef(res$sql), lme4::fixef(ref), tolerance = 2e-3)
  # cbind(successes, failures) with an expression, and the probit link
  expect_sql_glmm_matches(cbind(s, m - s) ~ f + x + (1 | g), tab, rows, binomial)
  expect_sql_glmm_matches(cbind(s, m - s) ~ x + (1 | g), tab, rows,
                          binomial(link = "probit"))
  # proportions with the trials as weights, a subset
  rows$p <- rows$s / rows$m
  expect_sql_glmm_matches(p ~ f + (1 | g), tab, rows, binomial, weights = m,
                          subset = h != "h1")
  # logical and two-valued text responses (the first level is failure)
  expect_sql_glmm_matches(yes ~ x + (1 | g), tab, rows, binomial)
  # (in memory the text must be a factor; on a table a text column is one)
  rows_f <- transform(rows, answer = factor(answer))
  expect_sql_glmm_matches(answer ~ x + (1 | g), tab, rows_f, binomial)
  expect_sql_glmm_matches(factor(answer) ~ x + (1 | g), tab, rows, binomial)
  # adaptive Gauss-Hermite quadrature
  expect_sql_glmm_matches(y ~ f + (1 | g), tab, rows, binomial, nAGQ = 5)
  # Poisson with the exposure summed (offset log(expo), in the formula or as
  # an argument), crossed factors; and an offset column used as a covariate
  # too, which stays in the pattern
  res <- expect_sql_glmm_matches(count ~ f + x + offset(log(expo)) + (1 | g) + (1 | h),
                                 tab, rows, poisson)
  expect_lt(res$sql$table$patterns, sum(stats::complete.cases(rows[c("count", "f", "x", "g", "h")])) / 2)
  ref <- lme4::glmer(count ~ f + x + offset(log(expo)) + (1 | g) + (1 | h), family = poisson,
                     data = rows, control = lme4::glmerControl(optimizer = "bobyqa",
                                                               optCtrl = list(rhoend = 1e-9)))
  expect_gt(as.numeric(logLik(res$sql)), as.numeric(logLik(ref)) - 1e-6)
  expect_equal(fixef(res$sql), lme4::fixef(ref), tolerance = 2e-3)
  expect_sql_glmm_matches(count ~ x + (1 | g), tab, rows, poisson, offset = log(expo))
  expect_sql_glmm_matches(count ~ x + log(expo) + offset(log(expo)) + (1 | g), tab, rows, poisson)
  # the likelihood-ratio test between two table fits is the one between the
  # in-memory fits (their patterns differ, the constants make them the rows')
  t1 <- glmm(y ~ f + x + (1 | g), family = binomial, data = tab)
  t0 <- glmm(y ~ x + (1 | g), family = binomial, data = tab)
  m1 <- glmm(y ~ f + x + (1 | g), family = binomial, data = rows)
  m0 <- glmm(y ~ x + (1 | g), family = binomial, data = rows)
  a_sql <- anova(t0, t1)
  a_mem <- anova(m0, m1)
  expect_equal(a_sql$Chisq, a_mem$Chisq, tolerance = 1e-5)
  expect_equal(a_sql$logLik, a_mem$logLik, tolerance = 1e-7)
  # update() queries the table again
  u <- update(t1, . ~ . - f)
  expect_equal(as.numeric(logLik(u)), as.numeric(logLik(t0)), tolerance = 1e-10)
  # predict() with newdata works in memory; the per-row methods are errors
  nd <- data.frame(f = c("a", "c"), x = c(0, 1), g = c("g01", "g02"))
  expect_equal(predict(t1, nd), predict(m1, nd), tolerance = 1e-5)
  # predict() on the table: the prediction written in SQL, as on the rows
  p_sql <- dplyr::collect(predict(t1, newdata = tab, type = "response", allow.new.levels = TRUE))
  p_mem <- predict(m1, newdata = as.data.frame(p_sql), type = "response", allow.new.levels = TRUE)
  keep <- !is.na(p_sql$.fitted)
  expect_gt(sum(keep), nrow(rows) - 10L)
  expect_equal(p_sql$.fitted[keep], unname(p_mem[keep]), tolerance = 1e-5)
  tp <- glmm(count ~ f + offset(log(expo)) + (1 | g), family = poisson, data = tab)
  mp <- glmm(count ~ f + offset(log(expo)) + (1 | g), family = poisson, data = rows)
  p_sql <- dplyr::collect(predict(tp, newdata = tab, allow.new.levels = TRUE))
  p_mem <- predict(mp, newdata = as.data.frame(p_sql), allow.new.levels = TRUE)
  keep <- !is.na(p_sql$.fitted)
  expect_equal(p_sql$.fitted[keep], unname(p_mem[keep]), tolerance = 1e-5)
  expect_error(predict(t1), "without 'newdata' needs the rows.*grouped by covariate pattern")
  for (fn in list(fitted, residuals, simulate, function(o) weights(o), as.function)) {
    expect_error(fn(t1), "needs the rows of the data.*grouped by covariate pattern")
  }
  expect_output(print(summary(t1)), "rows grouped into [0-9,]+ covariate patterns")
  invisible(NULL)
}

check_glmm_errors <- function(tab, rows) {
  expect_error(glmm(y ~ x + (1 | g), family = binomial, data = tab, na.action = na.fail),
               "na.fail: 3 rows")
  expect_error(glmm(count ~ x + (1 | g), family = binomial, data = tab),
               "strictly between 0 and 1|outside \\[0, 1\\]")
  expect_error(glmm(x ~ f + (1 | g), family = poisson, data = tab),
               "negative count")
  expect_error(glmm(p ~ f + (1 | g), family = poisson, data = tab),
               "not a whole number")
  expect_error(glmm(y ~ f + (1 | g), family = Gamma, data = tab),
               "binomial and Poisson families")
  expect_error(glmm(count ~ f + (1 | g), family = poisson, weights = m, data = tab),
               "prior weights with the Poisson family")
  expect_error(glmm(cbind(s, m - s) ~ m + (1 | g), family = binomial, data = tab),
               "'m' is used both in the response")
  expect_error(glmm(y ~ nope + (1 | g), family = binomial, data = tab),
               "column 'nope' used in the model's right-hand side not found")
  expect_error(glmm(cbind(s, 5 - s) ~ x + (1 | g), family = binomial, data = tab),
               "cbind\\(successes, failures\\) of columns")
  expect_error(glmm(y ~ x + (1 | g), family = binomial, data = tab, devFunOnly = TRUE),
               "devFunOnly = TRUE is not available")
  expect_error(glmm(y ~ x + (1 | g), family = binomial, data = tab, na.action = na.exclude),
               "na.exclude")
  # the budget: an error saying how many patterns there are
  expect_error(glmm(y ~ x + f + (1 | g) + (1 | h), family = binomial, data = tab,
                    control = glmmControl(table.budget.mb = 0.001)),
               paste0("fall into ", nrow(unique(stats::na.omit(rows[c("x", "f", "g", "h", "y")])[c("x", "f", "g", "h")])),
                      " distinct covariate patterns.*table.budget.mb"))
  expect_error(glmmControl(table.budget.mb = -1), "table.budget.mb")
}

test_that("glmm() on an SQLite table is glmm() on its rows", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  rows <- sql_glmm_frame()
  rows$p <- rows$s / rows$m
  DBI::dbWriteTable(con, "events", rows)
  tab <- dplyr::tbl(con, "events")
  # SQLite keeps logical columns as integers: the pulled rows have them so
  rows <- as.data.frame(dplyr::collect(tab))
  check_glmm_backend(tab, rows)
  check_glmm_errors(tab, rows)
  # an sql_source() and a lazy query after filter()
  src <- sql_test_source(con, "events")
  expect_sql_glmm_matches(y ~ f + (1 | g), src, rows, binomial)
  q <- dplyr::filter(tab, expo > 0.5)
  expect_sql_glmm_matches(count ~ f + offset(log(expo)) + (1 | g), q,
                          rows[rows$expo > 0.5, ], poisson)
  # nothing was written to the database
  expect_identical(DBI::dbListTables(con), "events")
})

test_that("glmm() on a PostgreSQL table is glmm() on its rows", {
  skip_if_not_installed("RPostgreSQL")
  skip_if_not_installed("dbplyr")
  con <- pg_test_connection()
  rows <- sql_glmm_frame(seed = 8L)
  rows$p <- rows$s / rows$m
  pg_copy_table(con, "glmm_events", rows)
  # dbplyr 2.3 warns (once in 8 hours) that RPostgreSQL's connection class
  # uses its older backend interface; the SQL it generates is the same.
  tab <- suppressWarnings(dplyr::tbl(con, "glmm_events"))
  check_glmm_backend(tab, rows)
  check_glmm_errors(tab, rows)
  # an offset column holding the log exposure is summed as log(sum(exp()))
  expect_sql_glmm_matches(count ~ x + offset(log_expo) + (1 | g), tab, rows, poisson)
})
