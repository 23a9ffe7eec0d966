# Fitted objects survive saveRDS()/readRDS() into a fresh R session: every method that reads the
# object or calls the engine again gives there what it gives in the session that made the fit.
# (update() re-evaluates the call, data name included, as update() of an lme4 fit does, so it
# needs the data in the new session too; it is not part of this test.)

# Runs `method_calls` on the fits saved in `path` in a new R process; returns their results.
in_fresh_session <- function(path) {
  script <- tempfile(fileext = ".R")
  out <- tempfile(fileext = ".rds")
  writeLines(c(
    "suppressPackageStartupMessages(library(mixedrs))",
    sprintf("options(useFancyQuotes = %s)", deparse(getOption("useFancyQuotes"))),
    sprintf("fits <- readRDS(%s)", deparse(path)),
    "source_calls <- function(fit, gfit) list(",
    "  print = capture.output(print(fit)), summary = capture.output(print(summary(fit))),",
    "  kr = coef(summary(fit, ddf = 'Kenward-Roger')), anova = anova(fit),",
    "  lrt = anova(fit, fits$fit0), predict = predict(fit, newdata = fits$new),",
    "  simulate = simulate(fit, nsim = 2, seed = 1), ranef = ranef(fit),",
    "  confint = confint(fit, parm = 'theta_', quiet = TRUE), vc = VarCorr(fit),",
    "  boot = bootmm(fit, fixef, nsim = 3, seed = 2)$t,",
    "  gsummary = capture.output(print(summary(gfit))), gpredict = predict(gfit, type = 'response'),",
    "  gconfint = confint(gfit, parm = 'theta_', quiet = TRUE), gsim = simulate(gfit, seed = 3))",
    sprintf("saveRDS(source_calls(fits$fit, fits$gfit), %s)", deparse(out))
  ), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  log <- tempfile()
  status <- system2(rscript, script, stdout = log, stderr = log)
  if (status != 0L) cat(readLines(log), sep = "\n")
  expect_identical(status, 0L)
  readRDS(out)
}

test_that("lmm and glmm fits work after saveRDS/readRDS in a fresh session", {
  ss <- lme4::sleepstudy
  fits <- list(
    fit = lmm(Reaction ~ Days + (Days | Subject), ss),
    fit0 = lmm(Reaction ~ 1 + (Days | Subject), ss),
    gfit = glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), lme4::cbpp,
                family = binomial),
    new = data.frame(Days = c(1, 5), Subject = c("308", "335"))
  )
  path <- tempfile(fileext = ".rds")
  saveRDS(fits, path)
  rm(fits)
  fits <- readRDS(path)
  here <- with(fits, list(
    print = capture.output(print(fit)), summary = capture.output(print(summary(fit))),
    kr = coef(summary(fit, ddf = "Kenward-Roger")), anova = anova(fit),
    lrt = suppressMessages(anova(fit, fit0)), predict = predict(fit, newdata = new),
    simulate = simulate(fit, nsim = 2, seed = 1), ranef = ranef(fit),
    confint = confint(fit, parm = "theta_", quiet = TRUE), vc = VarCorr(fit),
    boot = bootmm(fit, fixef, nsim = 3, seed = 2)$t,
    gsummary = capture.output(print(summary(gfit))),
    gpredict = predict(gfit, type = "response"),
    gconfint = confint(gfit, parm = "theta_", quiet = TRUE), gsim = simulate(gfit, seed = 3)
  ))
  there <- in_fresh_session(path)
  expect_identical(names(there), names(here))
  # printed output is identical except for the call line, which names the objects
  for (nm in c("print", "summary", "gsummary")) {
    expect_identical(there[[nm]][-(1:3)], here[[nm]][-(1:3)], label = nm)
  }
  for (nm in setdiff(names(here), c("print", "summary", "gsummary", "lrt"))) {
    expect_equal(there[[nm]], here[[nm]], tolerance = 1e-10, label = nm)
  }
  expect_equal(as.data.frame(there$lrt), as.data.frame(here$lrt), tolerance = 1e-10,
               ignore_attr = TRUE)
})
