# Shared checks of lmm() on a database table against lmm() on the same rows
# in memory (and lme4 on them): the fit from the database's grouped sums must
# be the fit of those rows.

# A data set that exercises the SQL path: a factor fixed effect, an
# interaction, I(), log(), weights, an offset, crossed grouping factors and
# NULLs in used columns.
sql_fit_frame <- function(n = 600L, seed = 11L) {
  set.seed(seed)
  d <- data.frame(
    g = sprintf("g%02d", sample.int(30L, n, TRUE)),
    h = sprintf("h%d", sample.int(8L, n, TRUE)),
    f = sample(c("a", "b", "c"), n, TRUE),
    x = stats::rnorm(n),
    z = stats::runif(n, 0.5, 3),
    w = stats::runif(n, 0.5, 2),
    o = stats::rnorm(n, sd = 0.1),
    stringsAsFactors = FALSE
  )
  ug <- stats::rnorm(30L, sd = 0.8)
  uh <- stats::rnorm(8L, sd = 0.5)
  d$y <- 1 + 0.5 * d$x - 0.3 * (d$f == "b") + 0.2 * log(d$z) + d$o +
    ug[as.integer(factor(d$g))] + uh[as.integer(factor(d$h))] +
    0.3 * d$x * ug[as.integer(factor(d$g))] + stats::rnorm(n) / sqrt(d$w)
  d$x[c(3, 40)] <- NA
  d$f[7] <- NA
  d
}

# Fits `formula` with lmm() to `table` (a lazy table or an sql_source()) and
# to `rows` in memory with the same arguments (`...`), and checks the two
# against each other: logLik to 1e-8 relative, the estimates to the
# optimizer's precision, and everything at the same covariance parameters
# (optimizer "none" from the in-memory estimates) to 1e-8; with `anova`, the
# type III F tests to 1e-6.
expect_sql_fit_matches <- function(formula, table, rows, ..., REML = TRUE, anova = TRUE) {
  # The extra arguments as written (weights = w names a column), in calls
  # evaluated here.
  extra <- as.list(substitute(list(...)))[-1L]
  fit_to <- function(data, more = list()) {
    call <- as.call(c(list(quote(lmm), formula = formula, data = data, REML = REML),
                      extra, more))
    suppressMessages(eval(call))
  }
  sql <- fit_to(quote(table))
  mem <- fit_to(quote(rows))
  testthat::expect_s3_class(sql, "lmm")
  testthat::expect_equal(as.numeric(logLik(sql)), as.numeric(logLik(mem)), tolerance = 1e-8)
  testthat::expect_identical(nobs(sql), nobs(mem))
  testthat::expect_equal(unname(sql$theta), unname(mem$theta), tolerance = 1e-5)
  testthat::expect_equal(fixef(sql), fixef(mem), tolerance = 1e-6)
  at <- fit_to(quote(table), list(start = mem$par,
                                  control = quote(lmmControl(optimizer = "none"))))
  testthat::expect_equal(fixef(at), fixef(mem), tolerance = 1e-8)
  testthat::expect_equal(sigma(at), sigma(mem), tolerance = 1e-8)
  testthat::expect_equal(as.matrix(vcov(at)), as.matrix(vcov(mem)), tolerance = 1e-8)
  testthat::expect_equal(as.data.frame(VarCorr(at)), as.data.frame(VarCorr(mem)),
                         tolerance = 1e-8)
  re_sql <- ranef(at, condVar = TRUE)
  re_mem <- ranef(mem, condVar = TRUE)
  for (g in names(re_mem)) {
    testthat::expect_equal(re_sql[[g]], re_mem[[g]], tolerance = 1e-8)
  }
  if (anova) testthat::expect_equal(anova(at), anova(mem), tolerance = 1e-6)
  invisible(list(sql = sql, mem = mem))
}
