# predict(fit, newdata = <database table>): the prediction written in SQL
# (fixed part, offsets, conditional modes joined by level, inverse link) run
# by SQLite, PostgreSQL and Spark, side by side with predict() of the same fit
# on the pulled rows in memory (and with lme4's predict()); and predict() of a
# fit from a table's sums on a data frame, against the in-memory fit.

# Rows numbered by `id`, so that predictions can be put back in order (SQL
# gives no row order).
sql_predict_data <- function() {
  mixed <- sql_fit_frame()
  mixed$id <- seq_len(nrow(mixed))
  mixed$t <- stats::runif(nrow(mixed), 0.5, 4)
  set.seed(5)
  mixed$cnt <- stats::rpois(nrow(mixed), mixed$t * exp(0.3 + 0.4 * pmax(mixed$z, 0)))
  # new levels: of the grouping factors g and h, and of the factor f
  newlev <- mixed
  newlev$g[c(2, 5, 9, 11, 20)] <- c("gX", "gY", "gX", "gX", "gY")
  newlev$h[c(4, 6, 8)] <- "hZ"
  newf <- mixed
  newf$f[c(1, 10, 12, 30)] <- "d"
  sleep <- lme4::sleepstudy
  sleep$id <- seq_len(nrow(sleep))
  sleep$Subject <- as.character(sleep$Subject)
  # the same rows with the grouping column as integers
  sleep_int <- sleep
  sleep_int$Subject <- as.integer(sleep_int$Subject)
  pastes <- lme4::Pastes
  pastes[] <- lapply(pastes, function(v) if (is.factor(v)) as.character(v) else v)
  pastes$id <- seq_len(nrow(pastes))
  cbpp <- lme4::cbpp
  cbpp[] <- lapply(cbpp, function(v) if (is.factor(v)) as.character(v) else v)
  cbpp$id <- seq_len(nrow(cbpp))
  # many levels: the modes travel as an inline table of 5000 rows
  set.seed(3)
  many <- data.frame(g = sprintf("L%05d", rep(seq_len(5000L), 2L)), x = stats::rnorm(10000L))
  many$y <- stats::rnorm(5000L)[rep(seq_len(5000L), 2L)] + many$x + stats::rnorm(10000L)
  many$id <- seq_len(nrow(many))
  list(mixed = mixed, newlev = newlev, newf = newf, sleep = sleep, sleep_int = sleep_int,
       pastes = pastes, cbpp = cbpp, many = many)
}

# The prediction of `fit` on the table `table`, collected and put in the
# order of `rows`, against predict() of `fit` on `rows` in memory; both
# relative 1e-10 (the SQL computes the same sums of products in doubles;
# the conditional modes and estimates travel with 17 significant digits).
expect_sql_predict <- function(fit, table, rows, ..., tolerance = 1e-10) {
  got <- dplyr::collect(predict(fit, newdata = table, ...))
  got <- got[order(got$id), ]
  want <- unname(predict(fit, newdata = rows, ...))
  testthat::expect_identical(as.integer(got$id), as.integer(rows$id))
  testthat::expect_identical(setdiff(names(got), ".fitted"), names(rows))
  testthat::expect_identical(is.na(got$.fitted), is.na(want))
  testthat::expect_true(sum(!is.na(want)) > 0)
  testthat::expect_equal(got$.fitted, want, tolerance = tolerance)
  invisible(got$.fitted)
}

# lmm() with its arguments as written (weights = w names a column), quietly.
quiet_lmm <- function(...) {
  call <- sys.call()
  call[[1L]] <- quote(lmm)
  suppressWarnings(suppressMessages(eval(call, parent.frame())))
}

check_sql_predict <- function(tables, data) {
  rows <- data$mixed
  # factors, an interaction, I(), log(), offset() and an offset argument,
  # a correlated random slope and a crossed factor; rows with NULLs
  fit <- quiet_lmm(y ~ f * x + I(x^2) + log(z) + offset(o) + (x | g) + (1 | h), rows,
                   weights = w, offset = 0.5 * t)
  expect_sql_predict(fit, tables$mixed, rows)
  expect_sql_predict(fit, tables$mixed, rows, re.form = NA)
  expect_sql_predict(fit, tables$mixed, rows, re.form = ~0)
  expect_sql_predict(fit, tables$mixed, rows, re.form = ~ (1 | h))
  expect_sql_predict(fit, tables$mixed, rows, re.form = ~ (1 | g))
  expect_sql_predict(fit, tables$mixed, rows, random.only = TRUE)
  # the random part really is in the prediction (the comparisons differ)
  full <- dplyr::collect(predict(fit, newdata = tables$mixed))
  pop <- dplyr::collect(predict(fit, newdata = tables$mixed, re.form = NA, column = "p"))
  full <- full[order(full$id), ]
  pop <- pop[order(pop$id), ]
  expect_gt(max(abs(full$.fitted - pop$p), na.rm = TRUE), 0.1)
  # new levels of the grouping factors: an error with the counts; or the
  # population level for those terms, as in memory
  expect_error(predict(fit, newdata = tables$newlev),
               "new levels of grouping factor 'g' in 'newdata' \\(2 levels on 5 rows\\)")
  expect_error(predict(fit, newdata = tables$newlev, re.form = ~ (1 | h)),
               "new levels of grouping factor 'h' in 'newdata' \\(1 level on 3 rows\\)")
  expect_sql_predict(fit, tables$newlev, data$newlev, allow.new.levels = TRUE)
  expect_sql_predict(fit, tables$newlev, data$newlev, re.form = NA)
  # a new level of a fixed-effect factor is an error either way
  expect_error(predict(fit, newdata = tables$newf, allow.new.levels = TRUE),
               "factor 'f' has new levels in 'newdata' not seen when fitting \\(1 level on 4 rows\\)")
  expect_error(predict(fit, newdata = data$newf), "factor 'f' has new level")
  # nested a/b and a:b
  pastes <- data$pastes
  fit_n <- quiet_lmm(strength ~ 1 + (1 | batch / cask), pastes)
  expect_sql_predict(fit_n, tables$pastes, pastes)
  expect_sql_predict(fit_n, tables$pastes, pastes, re.form = ~ (1 | batch))
  # structured terms, || and a factor(column) slope; an integer grouping
  # column of the table against the fit's factor levels
  sleep <- data$sleep
  for (f in list(Reaction ~ Days + (Days || Subject),
                 Reaction ~ Days + cs(0 + factor(Days) | Subject),
                 Reaction ~ Days + diag(Days | Subject, hom = TRUE),
                 Reaction ~ poly(Days, 1, raw = TRUE) + ar1(0 + factor(Days) | Subject))) {
    fit_s <- quiet_lmm(f, sleep)
    if (grepl("poly", deparse1(f), fixed = TRUE)) {
      expect_error(predict(fit_s, newdata = tables$sleep),
                   "the term 'poly\\(Days, 1, raw = TRUE\\)' cannot be computed in the database")
      next
    }
    expect_sql_predict(fit_s, tables$sleep, sleep)
    expect_sql_predict(fit_s, tables$sleep_int, data$sleep_int)
  }
  # a fit from the table's sums: the same SQL, and its prediction on a data
  # frame (no rows in the fit) is the in-memory fit's at the same parameters
  sf <- quiet_lmm(y ~ f * x + I(x^2) + log(z) + offset(o) + (x | g) + (1 | h), tables$mixed,
                  weights = w, offset = 0.5 * t)
  expect_sql_predict(sf, tables$mixed, rows)
  expect_sql_predict(sf, tables$newlev, data$newlev, allow.new.levels = TRUE)
  at <- quiet_lmm(y ~ f * x + I(x^2) + log(z) + offset(o) + (x | g) + (1 | h), rows,
                  weights = w, offset = 0.5 * t, start = sf$par,
                  control = lmmControl(optimizer = "none"))
  # same parameters, sums instead of rows: 1e-8, as the fits' estimates
  expect_equal(unname(predict(sf, newdata = rows)), unname(predict(at, newdata = rows)),
               tolerance = 1e-8)
  expect_equal(unname(predict(sf, newdata = data$newlev, allow.new.levels = TRUE)),
               unname(predict(at, newdata = data$newlev, allow.new.levels = TRUE)),
               tolerance = 1e-8)
  # many levels: the modes of 5000 levels inline
  many <- data$many
  fit_m <- quiet_lmm(y ~ x + (1 | g), many)
  expect_sql_predict(fit_m, tables$many, many)
  # GLMMs: binomial (logit) and Poisson (log) with an offset, both types
  cbpp <- data$cbpp
  gb <- suppressWarnings(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial, data = cbpp))
  expect_sql_predict(gb, tables$cbpp, cbpp)
  expect_sql_predict(gb, tables$cbpp, cbpp, type = "response")
  expect_sql_predict(gb, tables$cbpp, cbpp, type = "response", re.form = NA)
  gp <- suppressWarnings(glmm(cnt ~ x + f + offset(log(t)) + (1 | g), family = poisson,
                              data = rows))
  expect_sql_predict(gp, tables$mixed, rows)
  expect_sql_predict(gp, tables$mixed, rows, type = "response")
  gc <- suppressWarnings(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                              family = binomial("cloglog"), data = cbpp))
  expect_sql_predict(gc, tables$cbpp, cbpp, type = "response")
  gpr <- suppressWarnings(glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                               family = binomial("probit"), data = cbpp))
  expect_sql_predict(gpr, tables$cbpp, cbpp)
  expect_error(predict(gpr, newdata = tables$cbpp, type = "response"),
               "type = \"response\" is not available in SQL for the link 'probit'")
  invisible(list(fit = fit, gb = gb))
}

test_that("predict() on an SQLite table is predict() on its rows", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  data <- sql_predict_data()
  for (nm in names(data)) DBI::dbWriteTable(con, nm, data[[nm]])
  tables <- lapply(stats::setNames(names(data), names(data)), function(nm) dplyr::tbl(con, nm))
  res <- check_sql_predict(tables, data)
  # a lazy query after filter() and mutate() is predicted as is
  q <- dplyr::mutate(dplyr::filter(tables$mixed, z > 1), x = x * 2)
  rows <- subset(data$mixed, z > 1)
  rows$x <- rows$x * 2
  expect_sql_predict(res$fit, q, rows)
  # the result is a lazy table: more verbs run in the database
  p <- predict(res$fit, newdata = tables$mixed, column = "pred")
  expect_s3_class(p, "tbl_lazy")
  top <- dplyr::collect(dplyr::filter(p, pred > 2))
  all <- dplyr::collect(p)
  expect_identical(sort(top$id), sort(all$id[!is.na(all$pred) & all$pred > 2]))
  # nothing was written to the database
  tabs <- DBI::dbGetQuery(con, "SELECT name FROM sqlite_master")
  expect_setequal(tabs$name, names(data))
  # lme4's predict() on the same rows: the fits agree to the optimizers'
  # precision (full-precision settings), so 1e-6
  sleep <- data$sleep
  ours <- lmm(Reaction ~ Days + (Days | Subject), sleep)
  ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleep,
                    control = lme4::lmerControl(optimizer = "bobyqa",
                                                optCtrl = list(rhoend = 1e-12)))
  got <- dplyr::collect(predict(ours, newdata = tables$sleep))
  got <- got[order(got$id), ]
  expect_equal(got$.fitted, unname(predict(ref, newdata = sleep)), tolerance = 1e-6)
  cbpp <- data$cbpp
  gref <- lme4::glmer(cbind(incidence, size - incidence) ~ period + (1 | herd),
                      family = binomial, data = cbpp,
                      control = lme4::glmerControl(optimizer = c("bobyqa", "bobyqa"),
                                                   optCtrl = list(rhoend = 1e-10),
                                                   tolPwrss = 1e-12))
  got <- dplyr::collect(predict(res$gb, newdata = tables$cbpp, type = "response"))
  got <- got[order(got$id), ]
  # glmer's Laplace fit to the optimizer's precision
  expect_equal(got$.fitted, unname(predict(gref, newdata = cbpp, type = "response")),
               tolerance = 1e-5)
})

test_that("predict() on a PostgreSQL table is predict() on its rows", {
  skip_if_not_installed("dbplyr")
  con <- pg_test_connection()
  data <- sql_predict_data()
  for (nm in names(data)) pg_copy_table(con, paste0("sqlpred_", nm), data[[nm]])
  # dbplyr 2.3 warns (once in 8 hours) that RPostgreSQL's connection class
  # uses its older backend interface; the SQL it generates is the same.
  tables <- suppressWarnings(lapply(stats::setNames(names(data), names(data)),
                                    function(nm) dplyr::tbl(con, paste0("sqlpred_", nm))))
  check_sql_predict(tables, data)
})

test_that("predict() on an sql_source() returns an sql_source() of the prediction's query", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  data <- sql_predict_data()
  DBI::dbWriteTable(con, "pastes", data$pastes)
  fit <- lmm(strength ~ 1 + (1 | batch / cask), data$pastes)
  src <- sql_source(function(sql) DBI::dbGetQuery(con, sql), "pastes")
  # SQLite reads no derived column lists (VALUES ... AS t (a, b)): through
  # sql_source() the population-level prediction needs no inline table
  p <- predict(fit, newdata = src, re.form = NA)
  expect_s3_class(p, "sql_source")
  got <- src$run(paste("SELECT * FROM", p$table, "AS p ORDER BY id"))
  expect_equal(got$.fitted, unname(predict(fit, data$pastes, re.form = NA)), tolerance = 1e-10)
})

test_that("predict() on a Spark table (sql_source) is predict() on its rows", {
  spark <- spark_test_session()
  run <- spark_sql_runner(spark)
  data <- sql_predict_data()
  spark_register_df(spark, "pred_pastes", data$pastes)
  fit <- lmm(strength ~ 1 + (1 | batch / cask), data$pastes)
  src <- sql_source(run, table = "pred_pastes", dialect = "spark")
  p <- predict(fit, newdata = src)
  got <- run(paste("SELECT * FROM", p$table, "AS p"))
  got <- got[order(got$id), ]
  expect_equal(got$.fitted, unname(predict(fit, data$pastes)), tolerance = 1e-10)
  cbpp <- data$cbpp
  spark_register_df(spark, "pred_cbpp", cbpp)
  gb <- glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
             data = cbpp)
  p <- predict(gb, newdata = sql_source(run, "pred_cbpp", "spark"), type = "response")
  got <- run(paste("SELECT * FROM", p$table, "AS p"))
  got <- got[order(got$id), ]
  expect_equal(got$.fitted, unname(predict(gb, cbpp, type = "response")), tolerance = 1e-10)
})

test_that("predict() on a table: bad input is an error naming the cause", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- sql_test_con()
  on.exit(DBI::dbDisconnect(con))
  data <- sql_predict_data()
  rows <- data$mixed
  DBI::dbWriteTable(con, "mixed", rows)
  nox <- rows[setdiff(names(rows), "x")]
  DBI::dbWriteTable(con, "nox", nox)
  badtype <- rows
  badtype$x <- as.character(badtype$x)
  DBI::dbWriteTable(con, "badx", badtype)
  numf <- rows
  numf$f <- as.integer(factor(numf$f))
  DBI::dbWriteTable(con, "numf", numf)
  clash <- rows
  clash$.fitted <- 1
  DBI::dbWriteTable(con, "clash", clash)
  tb <- function(nm) dplyr::tbl(con, nm)
  fit <- quiet_lmm(y ~ f * x + log(z) + (x | g) + (1 | h), rows)
  expect_error(predict(fit, newdata = tb("nox")),
               "column 'x' needed by the fixed-effects part of the model not found in 'newdata'")
  expect_error(predict(fit, newdata = tb("nox"), re.form = NA, random.only = TRUE), NA)
  expect_error(predict(fit, newdata = tb("badx")),
               "column 'x' used as a number in 'x' is character, not numeric")
  expect_error(predict(fit, newdata = tb("numf")),
               "column 'f' of 'newdata' is numeric, but the model's factor 'f' has levels 'a', 'b', 'c'")
  expect_error(predict(fit, newdata = tb("clash")), "already has a column '.fitted'")
  expect_error(predict(fit, newdata = tb("mixed"), se.fit = TRUE),
               "se.fit = TRUE is not available when 'newdata' is a database table")
  expect_error(predict(fit, newdata = tb("mixed"), newparams = list(beta = fit$beta)),
               "'newparams' is not available when 'newdata' is a database table")
  expect_error(predict(fit, newdata = tb("mixed"), na.action = na.omit),
               "'na.action' is not used when 'newdata' is a database table")
  expect_error(predict(fit, newdata = tb("mixed"), column = NA), "'column'")
  expect_error(predict(fit, newdata = rows, column = "p"),
               "'column' names the prediction's column when 'newdata' is a database table")
  expect_error(predict(fit, newdata = tb("mixed"), re.form = ~ (1 | zz)),
               "not a variable of the model")
  # a fit from the table's sums needs newdata (the table, for a lazy table)
  sf <- quiet_lmm(y ~ f * x + log(z) + (x | g) + (1 | h), tb("mixed"))
  expect_error(predict(sf), "give newdata = the table")
  expect_error(predict(sf, newdata = rows, se.fit = TRUE),
               "se.fit = TRUE with random effects is not available for a model fitted from aggregates")
  # population-level standard errors need only vcov: as the in-memory fit's
  at <- quiet_lmm(y ~ f * x + log(z) + (x | g) + (1 | h), rows, start = sf$par,
                  control = lmmControl(optimizer = "none"))
  expect_equal(predict(sf, newdata = rows, re.form = NA, se.fit = TRUE),
               predict(at, newdata = rows, re.form = NA, se.fit = TRUE), tolerance = 1e-8)
  expect_error(predict(sf, newdata = data$newf), "factor 'f' has new level")
  expect_error(predict(sf, newdata = data$newlev), "new levels detected in newdata: gX, gY \\(grouping factor 'g'\\)")
})

test_that("a fit from sums predicts factor slopes and nested factors on a data frame", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  data <- sql_predict_data()
  DBI::dbWriteTable(con, "sleep", data$sleep)
  DBI::dbWriteTable(con, "pastes", data$pastes)
  cases <- list(list(f = Reaction ~ Days + cs(0 + factor(Days) | Subject), d = "sleep"),
                list(f = strength ~ 1 + (1 | batch / cask), d = "pastes"))
  for (cs in cases) {
    rows <- data[[cs$d]]
    sf <- quiet_lmm(cs$f, dplyr::tbl(con, cs$d))
    at <- quiet_lmm(cs$f, rows, start = sf$par, control = lmmControl(optimizer = "none"))
    expect_equal(unname(predict(sf, newdata = rows)), unname(predict(at, newdata = rows)),
                 tolerance = 1e-8)
    expect_sql_predict(sf, dplyr::tbl(con, cs$d), rows)
  }
})
