# lmm()'s fixed-effects checks (check.rankX, check.scaleX) and anova()'s
# hypotheses (type III with terms contained in others; types I and II with
# prior weights) for a fit from grouped sums (lmm_sums_fit(), and lmm() on a
# database table), side by side with lmm() on the same rows.

chk_ctl <- function(...) lmmControl(optCtrl = list(rhoend = 1e-12), ...)

# A data set with a collinear column (x2 = 2 x - z), a column on a large
# scale (big), a numeric 0/1 column (b), two factors and prior weights.
chk_frame <- function(n = 160L, seed = 3L) {
  set.seed(seed)
  d <- data.frame(g = factor(sprintf("g%02d", rep(seq_len(n / 10L), each = 10L))),
                  f1 = factor(sample(c("a", "b", "c"), n, TRUE)),
                  f2 = factor(sample(c("u", "v"), n, TRUE)),
                  x = rnorm(n), z = rnorm(n, 2), b = rbinom(n, 1, 0.4),
                  w = runif(n, 0.5, 2))
  d$x2 <- 2 * d$x - d$z
  d$big <- 1e5 * rnorm(n)
  u <- rnorm(n / 10L)
  us <- rnorm(n / 10L, sd = 0.3)
  d$y <- 2 + d$x + 0.5 * d$z - 0.4 * (d$f1 == "b") + 0.3 * d$b + u[d$g] +
    us[d$g] * d$x + 0.3 * d$x * (d$f1 == "c") + rnorm(n) / sqrt(d$w)
  d
}

# The sums inputs of the model of the in-memory fit `mem` over its full
# fixed-effects design, before any column is dropped (as a database sends
# them).
full_design_inputs <- function(mem, data, ...) {
  full <- mem
  ff <- parse_lmm_formula(mem$formula)$fixed_formula
  full$X <- stats::model.matrix(stats::delete.response(stats::terms(ff)), data,
                                contrasts.arg = attr(mem$X, "contrasts"))
  sums_inputs_of_fit(full, ...)
}

# The first condition of class `class` ("message", "warning" or "error")
# that `expr` signals, or NULL.
first_condition <- function(expr, class) {
  grab <- function(cond) cond
  switch(class,
         message = tryCatch({ expr; NULL }, message = grab),
         warning = tryCatch({ expr; NULL }, warning = grab),
         error = tryCatch({ expr; NULL }, error = grab))
}

test_that("check.rankX on sums drops the columns lmm() drops, with its message, warning or error", {
  d <- chk_frame()
  f <- y ~ x + z + x2 + f1 + (1 | g)
  mem <- suppressMessages(lmm(f, d, control = chk_ctl()))
  expect_named(attr(mem$X, "col.dropped"), "x2")
  shifts <- list(NULL, c(0, 0.1, 2, 0.5, 0, 0))
  for (xs in shifts) {
    inp <- full_design_inputs(mem, d, x_shift = xs, y_shift = if (is.null(xs)) 0 else 2)
    expect_identical(inp$X_names, c("(Intercept)", "x", "z", "x2", "f1b", "f1c"))
    for (level in c("message+drop.cols", "warn+drop.cols", "silent.drop.cols")) {
      ctl <- chk_ctl(check.rankX = level)
      cls <- switch(level, "message+drop.cols" = "message", "warn+drop.cols" = "warning",
                    "silent.drop.cols" = "none")
      if (cls == "none") {
        expect_silent(agg <- lmm_sums_fit(inp, control = ctl))
        expect_silent(m2 <- lmm(f, d, control = ctl))
      } else {
        cm <- first_condition(lmm(f, d, control = ctl), cls)
        ca <- first_condition(lmm_sums_fit(inp, control = ctl), cls)
        expect_s3_class(ca, if (cls == "message") "message" else "warning")
        expect_identical(conditionMessage(ca), conditionMessage(cm))
        agg <- suppressWarnings(suppressMessages(lmm_sums_fit(inp, control = ctl)))
      }
      expect_identical(attr(agg$X, "col.dropped"), attr(mem$X, "col.dropped"))
      expect_identical(attr(agg$X, "msgRankdrop"), attr(mem$X, "msgRankdrop"))
      expect_identical(attr(agg$X, "assign"), attr(mem$X, "assign"))
      # the optimum to rhoend 1e-12: estimates agree to 1e-6
      expect_equal(fixef(agg, add.dropped = TRUE), fixef(mem, add.dropped = TRUE),
                   tolerance = 1e-6)
      expect_equal(as.numeric(logLik(agg)), as.numeric(logLik(mem)), tolerance = 1e-8)
      expect_equal(as.matrix(vcov(agg)), as.matrix(vcov(mem)), tolerance = 1e-6)
    }
    for (level in c("stop.deficient", "ignore")) {
      em <- tryCatch(lmm(f, d, control = chk_ctl(check.rankX = level)), error = identity)
      ea <- tryCatch(lmm_sums_fit(inp, control = chk_ctl(check.rankX = level)),
                     error = identity)
      expect_s3_class(ea, "error")
      expect_identical(conditionMessage(ea), conditionMessage(em))
    }
  }
  # refitted by ML from its sums, the fit keeps its reduced design
  agg <- suppressMessages(lmm_sums_fit(full_design_inputs(mem, d), control = chk_ctl()))
  ml <- refitML(agg)
  expect_identical(attr(ml$X, "col.dropped"), attr(mem$X, "col.dropped"))
  expect_equal(as.numeric(logLik(ml)), as.numeric(logLik(refitML(mem))), tolerance = 1e-8)
})

test_that("an empty cell of a factor interaction drops the column lmm() drops", {
  d <- chk_frame()
  d <- d[!(d$f1 == "c" & d$f2 == "v"), ]
  f <- y ~ f1 * f2 + x + (1 | g)
  mem <- suppressMessages(lmm(f, d, control = chk_ctl()))
  expect_named(attr(mem$X, "col.dropped"), "f1c:f2v")
  for (weighted in c(FALSE, TRUE)) {
    m <- if (weighted) suppressMessages(lmm(f, d, weights = w, control = chk_ctl())) else mem
    inp <- full_design_inputs(m, d)
    expect_message(agg <- lmm_sums_fit(inp, control = chk_ctl()),
                   attr(mem$X, "msgRankdrop"), fixed = TRUE)
    expect_identical(attr(agg$X, "col.dropped"), attr(m$X, "col.dropped"))
    expect_equal(fixef(agg, add.dropped = TRUE), fixef(m, add.dropped = TRUE),
                 tolerance = 1e-6)
    # the weighted sums without their unweighted part: the rule runs on X'WX,
    # which finds the same (exactly) collinear column
    if (weighted) {
      bare <- full_design_inputs(m, d, unweighted = FALSE)
      agg2 <- suppressMessages(lmm_sums_fit(bare, control = chk_ctl(check.scaleX = "ignore")))
      expect_identical(attr(agg2$X, "col.dropped"), attr(m$X, "col.dropped"))
      expect_equal(fixef(agg2), fixef(m), tolerance = 1e-6)
    }
  }
})

test_that("check.scaleX on sums gives lmm()'s warning, message or error", {
  d <- chk_frame()
  cases <- list(
    list(f = y ~ x + big + b + (1 | g), weights = FALSE, scaled = TRUE),
    list(f = y ~ x + big + b + (1 | g), weights = TRUE, scaled = TRUE),
    list(f = y ~ x + b + f1 + (1 | g), weights = TRUE, scaled = FALSE),
    # without an intercept the sums of the columns come from xx
    list(f = y ~ 0 + x + big + (1 | g), weights = FALSE, scaled = TRUE),
    # a 0/1 column is left out: with it the log sds of I(700 * x) and b
    # (about 6.55 and -0.7) would differ by more than log(1000)
    list(f = y ~ I(700 * x) + b + (1 | g), weights = FALSE, scaled = FALSE),
    list(f = y ~ I(x / 1e4) + f1 + (1 | g), weights = TRUE, scaled = TRUE)
  )
  for (cs in cases) {
    fit_mem <- function(ctl) {
      if (cs$weights) lmm(cs$f, d, weights = w, control = ctl) else lmm(cs$f, d, control = ctl)
    }
    mem <- suppressWarnings(fit_mem(chk_ctl()))
    inp <- sums_inputs_of_fit(mem)
    info <- paste(deparse1(cs$f), if (cs$weights) "weighted")
    expect_identical(length(attr(mem$X, "msgScaleX")) > 0L, cs$scaled, info = info)
    for (level in c("warning", "message", "stop")) {
      ctl <- chk_ctl(check.scaleX = level)
      cls <- if (level == "stop") "error" else level
      cm <- first_condition(fit_mem(ctl), cls)
      ca <- first_condition(lmm_sums_fit(inp, control = ctl), cls)
      if (cs$scaled) {
        expect_s3_class(ca, cls)
        expect_identical(conditionMessage(ca), conditionMessage(cm), info = info)
      } else {
        expect_null(cm, info = info)
        expect_null(ca, info = info)
      }
    }
    agg <- suppressWarnings(lmm_sums_fit(inp, control = chk_ctl()))
    expect_identical(attr(agg$X, "msgScaleX"), attr(mem$X, "msgScaleX"), info = info)
    expect_silent(lmm_sums_fit(inp, control = chk_ctl(check.scaleX = "ignore")))
  }
  # weighted sums without their unweighted part cannot give the standard
  # deviations: an error saying so, unless the check is off
  mem <- suppressWarnings(lmm(y ~ x + big + (1 | g), d, weights = w, control = chk_ctl()))
  bare <- sums_inputs_of_fit(mem, unweighted = FALSE)
  expect_error(lmm_sums_fit(bare), "check.scaleX needs the unweighted sums")
  expect_equal(fixef(lmm_sums_fit(bare, control = chk_ctl(check.scaleX = "ignore"))),
               fixef(mem), tolerance = 1e-6)
})

test_that("anova type III of terms contained in others equals lmm()'s", {
  d <- chk_frame()
  models <- list(
    list(f = y ~ f1 * x + (x | g)),
    list(f = y ~ f1 * f2 + (1 | g)),
    list(f = y ~ f1 * f2 + (1 | g), contrasts = list(f1 = "contr.sum", f2 = "contr.helmert")),
    list(f = y ~ f1 * x + z + (1 | g), weights = TRUE)
  )
  for (m in models) {
    mem <- if (isTRUE(m$weights)) {
      lmm(m$f, d, weights = w, control = chk_ctl())
    } else {
      lmm(m$f, d, contrasts = m$contrasts, control = chk_ctl())
    }
    agg <- lmm_sums_fit(sums_inputs_of_fit(mem), control = chk_ctl())
    info <- paste(deparse1(m$f), if (!is.null(m$contrasts)) "sum/helmert",
                  if (isTRUE(m$weights)) "weighted")
    # the same hypotheses (they do not depend on the rows)
    h_mem <- attr(anova(mem), "hypotheses")
    h_agg <- attr(anova(agg), "hypotheses")
    expect_equal(h_agg, h_mem, tolerance = 1e-10, info = info)
    for (ddf in c("Satterthwaite", "Kenward-Roger")) {
      # both at their optima to rhoend 1e-12: the tables agree to 1e-6
      expect_equal(as.data.frame(anova(agg, type = 3, ddf = ddf)),
                   as.data.frame(anova(mem, type = 3, ddf = ddf)), tolerance = 1e-6,
                   info = paste(info, ddf))
    }
  }
  # the hypotheses need the factors' levels
  mem <- lmm(y ~ f1 * x + (1 | g), d, control = chk_ctl())
  inp <- sums_inputs_of_fit(mem)
  inp$xlevels <- NULL
  expect_error(anova(lmm_sums_fit(inp)), "levels of its fixed-effect factors")
})

test_that("anova types I and II with prior weights use the unweighted X'X, as lmm()", {
  d <- chk_frame()
  for (f in list(y ~ f1 * x + z + (x | g), y ~ x + f1 + f2 + (1 | g))) {
    mem <- lmm(f, d, weights = w, control = chk_ctl())
    # the unweighted and weighted X'X differ, so this tells them apart
    X <- unclass(mem$X)
    expect_gt(max(abs(crossprod(X) - crossprod(X * sqrt(d$w)))), 1)
    for (xs in list(NULL, c(0, 0.3, rep(0, ncol(X) - 2L)))) {
      agg <- lmm_sums_fit(sums_inputs_of_fit(mem, x_shift = xs, y_shift = 1),
                          control = chk_ctl())
      for (type in c("I", "II")) for (ddf in c("Satterthwaite", "Kenward-Roger")) {
        expect_equal(as.data.frame(anova(agg, type = type, ddf = ddf)),
                     as.data.frame(anova(mem, type = type, ddf = ddf)), tolerance = 1e-6,
                     info = paste(deparse1(f), type, ddf))
      }
    }
  }
})

test_that("lmm() on an SQLite table applies the checks and anova as lmm() on its rows", {
  skip_if_not_installed("RSQLite")
  skip_if_not_installed("dbplyr")
  d <- chk_frame()
  d$f1 <- as.character(d$f1)
  d$f2 <- as.character(d$f2)
  d$x2[5] <- NA
  con <- DBI::dbConnect(RSQLite::SQLite(), ":memory:")
  on.exit(DBI::dbDisconnect(con))
  DBI::dbWriteTable(con, "chk", d)
  tbl <- dplyr::tbl(con, "chk")
  # rank: the collinear column, message and estimates
  f <- y ~ x + z + x2 + f1 * b + (1 | g)
  msg_mem <- first_condition(lmm(f, d, weights = w, control = chk_ctl()), "message")
  msg_sql <- first_condition(lmm(f, tbl, weights = w, control = chk_ctl()), "message")
  expect_identical(conditionMessage(msg_sql), conditionMessage(msg_mem))
  mem <- suppressMessages(lmm(f, d, weights = w, control = chk_ctl()))
  sql <- suppressMessages(lmm(f, tbl, weights = w, control = chk_ctl()))
  expect_identical(attr(sql$X, "col.dropped"), attr(mem$X, "col.dropped"))
  expect_equal(fixef(sql, add.dropped = TRUE), fixef(mem, add.dropped = TRUE), tolerance = 1e-6)
  err_mem <- tryCatch(lmm(f, d, control = chk_ctl(check.rankX = "stop.deficient")),
                      error = identity)
  err_sql <- tryCatch(lmm(f, tbl, control = chk_ctl(check.rankX = "stop.deficient")),
                      error = identity)
  expect_identical(conditionMessage(err_sql), conditionMessage(err_mem))
  # scale: a column on a large scale, with a numeric 0/1 column beside it
  g2 <- y ~ x + big + b + (1 | g)
  w_mem <- first_condition(lmm(g2, d, weights = w), "warning")
  w_sql <- first_condition(lmm(g2, tbl, weights = w), "warning")
  expect_identical(conditionMessage(w_sql), conditionMessage(w_mem))
  expect_null(first_condition(lmm(y ~ x + b + (1 | g), tbl, weights = w), "warning"))
  # anova: type III of f1 * x and f1 * f2, types I and II with weights
  for (h in list(y ~ f1 * x + (x | g), y ~ f1 * f2 + (1 | g))) {
    mem <- lmm(h, d, weights = w, control = chk_ctl())
    sql <- lmm(h, tbl, weights = w, control = chk_ctl())
    for (type in c("III", "II", "I")) for (ddf in c("Satterthwaite", "Kenward-Roger")) {
      expect_equal(as.data.frame(anova(sql, type = type, ddf = ddf)),
                   as.data.frame(anova(mem, type = type, ddf = ddf)), tolerance = 1e-6,
                   info = paste(deparse1(h), type, ddf))
    }
  }
})
