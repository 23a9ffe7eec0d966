# lmm(data = <database table>): the model fitted from grouped sums computed by
# SQL in SQLite and PostgreSQL (real servers started by the tests'
# helper-databases.R), against lmm() and lme4 on the same rows in memory.

sql_fit_models <- list(
  list(formula = Reaction ~ Days + (Days | Subject), table = "sleep"),
  list(formula = diameter ~ 1 + (1 | plate) + (1 | sample), table = "pen"),
  list(formula = strength ~ 1 + (1 | batch / cask), table = "pastes")
)

sql_fit_data <- function() {
  list(sleep = lme4::sleepstudy, pen = lme4::Penicillin, pastes = lme4::Pastes,
       mixed = sql_fit_frame())
}

check_backend <- function(tables) {
  data <- sql_fit_data()
  for (m in sql_fit_models) {
    rows <- data[[m$table]]
    for (reml in c(TRUE, FALSE)) {
      expect_sql_fit_matches(m$formula, tables[[m$table]], rows, REML = reml)
    }
  }
  # factor fixed effects, interaction, I(), log(), weights, offset, subset,
  # crossed factors, a correlated slope, NULLs dropped
  rows <- data$mixed
  res <- expect_sql_fit_matches(y ~ f * x + I(x^2) + log(z) + (x | g) + (1 | h),
                                tables$mixed, rows, weights = w, offset = o,
                                subset = z > 0.7)
  keep <- rows$z > 0.7
  expect_identical(nobs(res$sql), sum(keep & stats::complete.cases(rows[c("x", "f")])))
  # lme4 on the pulled rows agrees
  ref <- suppressMessages(lme4::lmer(y ~ f * x + I(x^2) + log(z) + (x | g) + (1 | h), data = rows,
                    weights = w, offset = o, subset = z > 0.7,
                    control = lme4::lmerControl(optimizer = "bobyqa",
                                                optCtrl = list(rhoend = 1e-10))))
  expect_equal(as.numeric(logLik(res$sql)), as.numeric(logLik(ref)), tolerance = 1e-8)
  expect_equal(fixef(res$sql), lme4::fixef(ref), tolerance = 1e-5)
  # a response far from zero loses no digits (the sums are centred in SQL)
  far <- data$sleep
  far$Reaction <- far$Reaction + 1e6
  far_fit <- suppressMessages(lmm(Reaction ~ Days + (Days | Subject), data = tables$far))
  near_fit <- suppressMessages(lmm(Reaction ~ Days + (Days | Subject), data = data$sleep))
  expect_equal(unname(fixef(far_fit)) - c(1e6, 0), unname(fixef(near_fit)), tolerance = 1e-8)
  expect_equal(unname(far_fit$theta), unname(near_fit$theta), tolerance = 1e-6)
}

test_that("sums whose response X explains almost entirely warn that digits cancel", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  # lme4's tests/fewlevels.R: y = 1 + 2x + noise, x = 1..10000, four levels.
  set.seed(1)
  n <- 10000
  d <- data.frame(x = 1:n, fac = as.character(gl(4, 1, n)))
  d$y <- 1 + 2 * d$x + rnorm(4, 0, 4)[as.integer(factor(d$fac))] + rnorm(n)
  DBI::dbWriteTable(con, "trend", d)
  DBI::dbWriteTable(con, "sleep", lme4::sleepstudy)
  # centred in SQL, y'y still exceeds the residual sum of squares 2.1e6 times:
  # the variance estimate was 19.519 where lme4 gives 19.548, without a word
  w <- capture_warnings(lmm(y ~ x + (1 | fac), dplyr::tbl(con, "trend")))
  expect_true(any(grepl("2.1e\\+06 times its residual sum of squares.*about 6 of the criterion's 16 digits cancel", w)))
  # in memory the engine removes X's fit first, and says nothing
  w_rows <- capture_warnings(lmm(y ~ x + (1 | fac), d))
  expect_false(any(grepl("cancel", w_rows)))
  # an ordinary response: no warning
  expect_false(any(grepl("cancel", capture_warnings(
    lmm(Reaction ~ Days + (Days | Subject), dplyr::tbl(con, "sleep"))))))
})

test_that("lmm() on an SQLite table is lmm() on its rows", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  RSQLite::initExtension(con, "math")
  data <- sql_fit_data()
  data$far <- transform(data$sleep, Reaction = Reaction + 1e6)
  for (nm in names(data)) DBI::dbWriteTable(con, nm, data[[nm]])
  tables <- lapply(stats::setNames(names(data), names(data)), function(nm) dplyr::tbl(con, nm))
  check_backend(tables)
  # a lazy query after filter() and mutate(): the same as the subset in memory
  q <- dplyr::mutate(dplyr::filter(tables$sleep, Days > 0), D2 = Days * 2)
  sub <- subset(data$sleep, Days > 0)
  sub$D2 <- sub$Days * 2
  expect_sql_fit_matches(Reaction ~ D2 + (D2 | Subject), q, sub)
  # the same table through sql_source()
  src <- sql_source(function(sql) DBI::dbGetQuery(con, sql), table = "sleep")
  expect_sql_fit_matches(Reaction ~ Days + (Days | Subject), src, data$sleep)
  # the fit says where it came from; per-row methods are errors saying why
  fit <- lmm(Reaction ~ Days + (Days | Subject), data = tables$sleep)
  expect_output(print(fit), "SQLite table sleep \\(fitted from aggregates")
  expect_error(fitted(fit), "needs the rows of the data")
  expect_error(residuals(fit), "needs the rows of the data")
  # update() queries the table again
  fit2 <- suppressMessages(update(fit, . ~ . - Days))
  mem2 <- suppressMessages(lmm(Reaction ~ (Days | Subject), data = data$sleep))
  expect_equal(as.numeric(logLik(fit2)), as.numeric(logLik(mem2)), tolerance = 1e-8)
  # devFunOnly: lme4's deviance function
  dd <- lmm(Reaction ~ Days + (Days | Subject), data = tables$sleep, devFunOnly = TRUE)
  dd_ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy, devFunOnly = TRUE)
  expect_equal(dd(c(1, 0.1, 0.5)), dd_ref(c(1, 0.1, 0.5)), tolerance = 1e-10)
  # na.action
  expect_error(lmm(y ~ x + (1 | g), data = tables$mixed, na.action = na.fail),
               "rows of the table have a NULL")
  expect_error(lmm(y ~ x + (1 | g), data = tables$mixed, na.action = na.exclude),
               "na.exclude")
  # bad input names the cause
  expect_error(lmm(Reaction ~ nosuch + (1 | Subject), data = tables$sleep), "nosuch")
  expect_error(lmm(Reaction ~ poly(Days, 2) + (1 | Subject), data = tables$sleep),
               "poly\\(Days, 2\\).*mutate")
  expect_error(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                    family = binomial, data = dplyr::tbl(con, "sleep")),
               "column 'period', 'herd' used in the model's right-hand side not found")
  nothing <- DBI::dbGetQuery(con, "SELECT name FROM sqlite_master WHERE type = 'table'")
  expect_setequal(nothing$name, names(data))
})

test_that("lmm() on a PostgreSQL table is lmm() on its rows", {
  skip_if_not_installed("dbplyr")
  con <- pg_test_connection()
  data <- sql_fit_data()
  data$far <- transform(data$sleep, Reaction = Reaction + 1e6)
  for (nm in names(data)) {
    df <- data[[nm]]
    df[] <- lapply(df, function(v) if (is.factor(v)) as.character(v) else v)
    pg_copy_table(con, paste0("sqlfit_", nm), df)
  }
  # dbplyr 2.3 warns (once in 8 hours) that RPostgreSQL's connection class
  # uses its older backend interface; the SQL it generates is the same.
  tables <- suppressWarnings(lapply(stats::setNames(names(data), names(data)),
                                    function(nm) dplyr::tbl(con, paste0("sqlfit_", nm))))
  check_backend(tables)
})
