# Shared checks of glmm() on a database table (the rows grouped by covariate
# pattern in SQL, the patterns fitted in memory) against glmm() and lme4's
# glmer() on the same rows in memory.

# Rows whose covariates take few values, so that they compress: a 0/1
# response, counts with an exposure, successes of 1-5 trials, a logical and a
# two-valued text response, crossed grouping factors, NULLs in used columns.
sql_glmm_frame <- function(n = 2000L, seed = 5L) {
  set.seed(seed)
  d <- data.frame(
    g = sprintf("g%02d", sample.int(15L, n, TRUE)),
    h = sprintf("h%d", sample.int(4L, n, TRUE)),
    f = sample(c("a", "b", "c"), n, TRUE),
    x = sample(c(-1, -0.5, 0, 0.5, 1), n, TRUE),
    expo = sample(c(0.5, 1, 2, 4), n, TRUE),
    m = sample.int(5L, n, TRUE),
    stringsAsFactors = FALSE
  )
  ug <- stats::rnorm(15L, sd = 0.7)
  uh <- stats::rnorm(4L, sd = 0.4)
  us <- stats::rnorm(15L, sd = 0.3)
  gi <- as.integer(factor(d$g))
  eta <- -0.3 + 0.6 * d$x + 0.4 * (d$f == "b") - 0.5 * (d$f == "c") + ug[gi] +
    uh[as.integer(factor(d$h))] + us[gi] * d$x
  d$y <- stats::rbinom(n, 1L, stats::plogis(eta))
  d$s <- stats::rbinom(n, d$m, stats::plogis(eta))
  d$count <- stats::rpois(n, d$expo * exp(eta))
  d$log_expo <- log(d$expo)
  d$yes <- d$y == 1
  d$answer <- ifelse(d$y == 1, "yes", "no")
  d$x[c(5, 60)] <- NA
  d$count[9] <- NA
  d$g[17] <- NA
  d
}

# Fits `formula` with glmm() to `table` (a lazy table or an sql_source()) and
# to `rows` in memory with the same arguments (`...`, as written), and checks
# the two against each other: the rows' log-likelihood and deviance at the
# same parameters to 1e-9 (the compression's constant), at each fit's own
# optimum to 1e-7, the estimates to the optimizer's precision, standard
# errors to 1e-4, nobs. Returns both fits.
expect_sql_glmm_matches <- function(formula, table, rows, family, ...) {
  extra <- as.list(substitute(list(...)))[-1L]
  fit_to <- function(data, more = list()) {
    call <- as.call(c(list(quote(glmm), formula = formula, data = data, family = family),
                      extra, more))
    suppressMessages(eval(call))
  }
  sql <- fit_to(quote(table))
  mem <- fit_to(quote(rows))
  testthat::expect_s3_class(sql, "glmm")
  testthat::expect_identical(nobs(sql), nobs(mem))
  testthat::expect_identical(df.residual(sql), df.residual(mem))
  testthat::expect_equal(as.numeric(logLik(sql)), as.numeric(logLik(mem)), tolerance = 1e-7)
  testthat::expect_equal(unname(sql$theta), unname(mem$theta), tolerance = 1e-4)
  testthat::expect_equal(fixef(sql), fixef(mem), tolerance = 1e-4)
  testthat::expect_equal(sqrt(diag(as.matrix(vcov(sql)))), sqrt(diag(as.matrix(vcov(mem)))),
                         tolerance = 1e-3)
  # At the in-memory fit's parameters: the same likelihood and deviance of
  # the rows, the same conditional modes.
  at <- fit_to(quote(table), list(
    start = list(theta = mem$theta, fixef = fixef(mem)),
    control = quote(glmmControl(optimizer = "none"))))
  at_mem <- fit_to(quote(rows), list(
    start = list(theta = mem$theta, fixef = fixef(mem)),
    control = quote(glmmControl(optimizer = "none"))))
  testthat::expect_equal(as.numeric(logLik(at)), as.numeric(logLik(at_mem)), tolerance = 1e-9)
  testthat::expect_equal(deviance(at), deviance(at_mem), tolerance = 1e-9)
  testthat::expect_equal(AIC(at), AIC(at_mem), tolerance = 1e-9)
  testthat::expect_equal(BIC(at), BIC(at_mem), tolerance = 1e-9)
  re_sql <- ranef(at)
  re_mem <- ranef(at_mem)
  for (g in names(re_mem)) {
    testthat::expect_equal(as.matrix(re_sql[[g]]), as.matrix(re_mem[[g]]), tolerance = 1e-6)
  }
  invisible(list(sql = sql, mem = mem))
}
