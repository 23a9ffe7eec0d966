# mixedrs and lme4 attached together, in either order, in fresh R processes:
# the masked generics and lme4's own functions work on mixedrs fits, and
# mixedrs' generics still work on lme4 fits. tidy()/glance()/augment() work
# after library(mixedrs) alone.

# Runs R code in a fresh Rscript process with this session's library paths;
# returns its output lines (stdout and stderr).
run_fresh_r <- function(code) {
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script))
  writeLines(code, script)
  libs <- paste(.libPaths(), collapse = .Platform$path.sep)
  out <- suppressWarnings(system2(file.path(R.home("bin"), "Rscript"), shQuote(script),
                                  stdout = TRUE, stderr = TRUE,
                                  env = paste0("R_LIBS=", shQuote(libs))))
  out
}

# The checks run in each order: each prints "OK <name>" or "FAIL <name>:
# <message>". Values from the attached (masking) functions and from lme4::
# are compared with mixedrs:: on the same fit, and lme4 fits are checked
# against lme4's own functions.
# The check printer of the scripts below.
check_code <- '
check <- function(name, expr) {
  res <- tryCatch(isTRUE(expr), error = function(e) conditionMessage(e))
  cat(if (isTRUE(res)) "OK" else "FAIL", " ", name,
      if (!isTRUE(res)) paste0(": ", res), "\\n", sep = "")
}
'

attach_checks <- '
sleepstudy <- lme4::sleepstudy
fit <- mixedrs::lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
gfit <- mixedrs::glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                      family = binomial, data = lme4::cbpp)
ref <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy)
sim <- simulate(fit, seed = 1)
th <- mixedrs::getME(fit, "theta")
for (f in list(fit, gfit)) {
  k <- class(f)[1L]
  check(paste(k, "getME"), identical(getME(f, "theta"), f$theta))
  check(paste(k, "lme4::getME"), identical(lme4::getME(f, "theta"), f$theta))
  check(paste(k, "lme4::getME Zt"), identical(lme4::getME(f, "Zt"), mixedrs::getME(f, "Zt")))
  check(paste(k, "isSingular"), identical(isSingular(f), mixedrs::isSingular(f)))
  check(paste(k, "lme4::isSingular"), identical(lme4::isSingular(f), FALSE))
  check(paste(k, "ngrps"), identical(ngrps(f), mixedrs::ngrps(f)))
  check(paste(k, "lme4::ngrps"), all.equal(lme4::ngrps(f), mixedrs::ngrps(f)))
  check(paste(k, "fixef"), identical(lme4::fixef(f), mixedrs::fixef(f)))
  check(paste(k, "ranef"), identical(lme4::ranef(f), mixedrs::ranef(f)))
  check(paste(k, "VarCorr"), identical(lme4::VarCorr(f), mixedrs::VarCorr(f)))
  check(paste(k, "isREML"), identical(isREML(f), k == "lmm"))
  check(paste(k, "lme4::isREML"), identical(lme4::isREML(f), k == "lmm"))
  check(paste(k, "lme4::isLMM"), identical(lme4::isLMM(f), k == "lmm"))
  check(paste(k, "lme4::isGLMM"), identical(lme4::isGLMM(f), k == "glmm"))
  check(paste(k, "lme4::isNLMM"), identical(lme4::isNLMM(f), FALSE))
  check(paste(k, "lme4::getData"), identical(lme4::getData(f), mixedrs::getData(f)))
  check(paste(k, "lme4::refitML"), identical(class(lme4::refitML(f)), class(f)))
}
check("lmm REMLcrit (mixedrs::)", all.equal(mixedrs::REMLcrit(fit), fit$devcomp$cmp[["REML"]]))
check("lmm lme4::refit", all.equal(lme4::refit(fit, sim)$theta, mixedrs::refit(fit, sim)$theta))
check("lmm refit", all.equal(refit(fit, sim)$theta, mixedrs::refit(fit, sim)$theta))
check("lmm tidy", is.data.frame(tidy(fit)) && is.data.frame(glance(fit)) &&
      is.data.frame(augment(fit)))
# lme4 fits: the masked generics hand them to lme4
check("merMod getME", identical(getME(ref, "theta"), lme4::getME(ref, "theta")))
check("merMod isSingular", identical(isSingular(ref), lme4::isSingular(ref)))
check("merMod ngrps", identical(ngrps(ref), lme4::ngrps(ref)))
check("merMod REMLcrit", identical(REMLcrit(ref), lme4::REMLcrit(ref)))
check("merMod isREML", identical(isREML(ref), TRUE))
check("merMod refit", all.equal(lme4::getME(refit(ref, sim), "theta"),
                                lme4::getME(lme4::refit(ref, sim), "theta")))
'

attach_expected <- c(
  as.vector(outer(c("lmm", "glmm"),
                  c("getME", "lme4::getME", "lme4::getME Zt", "isSingular",
                    "lme4::isSingular", "ngrps", "lme4::ngrps", "fixef", "ranef",
                    "VarCorr", "isREML", "lme4::isREML", "lme4::isLMM",
                    "lme4::isGLMM", "lme4::isNLMM", "lme4::getData",
                    "lme4::refitML"), paste)),
  "lmm REMLcrit (mixedrs::)", "lmm lme4::refit", "lmm refit", "lmm tidy",
  "merMod getME", "merMod isSingular", "merMod ngrps", "merMod REMLcrit",
  "merMod isREML", "merMod refit")

expect_attach_checks_pass <- function(out) {
  fails <- grep("^FAIL ", out, value = TRUE)
  expect_identical(fails, character())
  oks <- sub("^OK ", "", grep("^OK ", out, value = TRUE))
  expect_setequal(oks, attach_expected)
}

test_that("library(mixedrs); library(lme4): both APIs work on both kinds of fit", {
  skip_if_not_installed("lme4")
  out <- run_fresh_r(c("suppressPackageStartupMessages({library(mixedrs); library(lme4)})",
                       check_code, attach_checks))
  expect_attach_checks_pass(out)
})

test_that("library(lme4); library(mixedrs): both APIs work on both kinds of fit", {
  skip_if_not_installed("lme4")
  out <- run_fresh_r(c("suppressPackageStartupMessages({library(lme4); library(mixedrs)})",
                       check_code, attach_checks))
  expect_attach_checks_pass(out)
})

test_that("lme4 loaded but not attached: lme4:: functions work on mixedrs fits", {
  skip_if_not_installed("lme4")
  out <- run_fresh_r(c(
    "suppressPackageStartupMessages(library(mixedrs))",
    "fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)",
    "cat('theta', isTRUE(all.equal(lme4::getME(fit, 'theta'), fit$theta)), '\\n')",
    "cat('singular', identical(lme4::isSingular(fit), FALSE), '\\n')",
    "cat('tidy', is.data.frame(tidy(fit)), '\\n')"))
  expect_true(all(c("theta TRUE ", "singular TRUE ", "tidy TRUE ") %in% out))
})

# lmerTest attached after mixedrs masks step(), ls_means(), difflsmeans(),
# lsmeansLT() and contest() with its generics, which reach our functions
# through the methods registered on them; in the other order ours mask
# lmerTest's and hand lmerTest fits to it.
lmerTest_checks <- '
sleepstudy <- lme4::sleepstudy
set.seed(1)
sleepstudy$f <- factor(sample(c("a", "b"), nrow(sleepstudy), TRUE))
fit <- mixedrs::lmm(Reaction ~ Days + f + (Days | Subject), sleepstudy)
gfit <- mixedrs::glmm(cbind(incidence, size - incidence) ~ period + (1 | herd),
                      family = binomial, data = lme4::cbpp)
ref <- lmerTest::lmer(Reaction ~ Days + f + (Days | Subject), sleepstudy)
check("step", identical(step(fit)$fixed, mixedrs::step(fit)$fixed))
check("ls_means", identical(ls_means(fit), mixedrs::ls_means(fit)))
check("lsmeansLT", identical(lsmeansLT(fit, which = "f"), mixedrs::ls_means(fit, which = "f")))
check("difflsmeans", identical(difflsmeans(fit), mixedrs::difflsmeans(fit)))
check("contest", identical(contest(fit, c(0, 1, 0), joint = FALSE),
                           mixedrs::contest(fit, c(0, 1, 0), joint = FALSE)))
check("contest1D", identical(contest1D(fit, c(0, 1, 0)), mixedrs::contest1D(fit, c(0, 1, 0))))
check("contestMD", identical(contestMD(fit, diag(3)), mixedrs::contestMD(fit, diag(3))))
check("glmm errors", grepl("glmm", tryCatch(ls_means(gfit), error = conditionMessage)) &&
                     grepl("glmm", tryCatch(step(gfit), error = conditionMessage)))
check("lmerTest step", identical(step(ref)$fixed, lmerTest::step(ref)$fixed))
check("lmerTest ls_means", identical(ls_means(ref), lmerTest::ls_means(ref)))
check("lmerTest contest", identical(contest(ref, c(0, 1, 0)), lmerTest::contest(ref, c(0, 1, 0))))
'

test_that("lmerTest attached before or after mixedrs: its functions' names work on both kinds of fit", {
  skip_if_not_installed("lmerTest")
  expected <- c("step", "ls_means", "lsmeansLT", "difflsmeans", "contest", "contest1D",
                "contestMD", "glmm errors",
                "lmerTest step", "lmerTest ls_means", "lmerTest contest")
  for (order in c("library(mixedrs); library(lmerTest)", "library(lmerTest); library(mixedrs)")) {
    out <- run_fresh_r(c(paste0("suppressPackageStartupMessages({", order, "})"),
                         check_code, lmerTest_checks))
    expect_identical(grep("^FAIL ", out, value = TRUE), character())
    expect_setequal(sub("^OK ", "", grep("^OK ", out, value = TRUE)), expected)
  }
})
