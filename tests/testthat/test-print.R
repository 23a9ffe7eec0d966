# Printed output of lmm() fits against lme4's, line by line.
#
# Each model is fitted with lmm() and with lme4::lmer() on the same call; the
# printed lines must agree after the class tag (['lmm'] vs ['lmerMod']) and
# the optimizer name are aligned. Numbers may differ in the last printed
# digit (or by a small relative amount): the two fits come from different
# optimizers.

# --- helpers ----------------------------------------------------------------

# Fits the quoted lmm() call and the same call with lme4::lmer() run to full
# precision (helper-reference.R), both evaluated in `env`, with messages
# (e.g. singular fit) silenced.
fit_pair <- function(call, env = parent.frame()) {
  ref_call <- call
  ref_call <- as_lmer_full_call(ref_call)
  ref <- suppressMessages(eval(ref_call, env))
  # the reference prints the call as given (a Control line only if it has one)
  ref@call$control <- call$control
  list(fit = suppressMessages(eval(call, env)), ref = ref)
}

# Tags that legitimately differ between the two packages.
align_tags <- function(lines) {
  lines <- gsub("['lmm']", "['lmerMod']", lines, fixed = TRUE)
  gsub("optimizer (bobyqa)", "optimizer (nloptwrap)", lines, fixed = TRUE)
}

# lmerTest's view of an lme4 fit: its summary is the reference for ours.
lmertest <- function(ref) lmerTest::as_lmerModLmerTest(ref)

# lmerTest's title carries its class name (our tag is 'lmm'), and a REML
# title is wrapped before the tag ("... method [" then "lmerModLmerTest]");
# join the two lines and use our tag.
align_lmertest <- function(lines) {
  i <- which(endsWith(lines, " [") & c(lines[-1L], "") == "lmerModLmerTest]")
  if (length(i)) {
    lines[i] <- paste0(lines[i], "'lmm']")
    lines <- lines[-(i + 1L)]
  }
  align_tags(sub("[lmerModLmerTest]", "[lmm]", lines, fixed = TRUE))
}

# print(fit) and VarCorr() against lme4; summary() against lmerTest (the
# default, Satterthwaite's df) and, with ddf = "lme4", against lme4.
lmm_print_parity <- function(pair) {
  skip_if_not_installed("lmerTest")
  expect_print_parity(pair, align_tags, summary_ref = summary(lmertest(pair$ref)),
                      summary_align = align_lmertest)
  expect_same_print(printed(summary(pair$fit, ddf = "lme4"))$out,
                    printed(summary(pair$ref))$out, align_tags)
  # pbkrtest builds V without the prior weights (its df can exceed n), so
  # Kenward-Roger is compared on unweighted fits only.
  if (isTRUE(pair$fit$REML) && all(weights(pair$fit) == 1)) {
    expect_same_print(printed(summary(pair$fit, ddf = "Kenward-Roger"))$out,
                      align_lmertest(printed(summary(lmertest(pair$ref),
                                                     ddf = "Kenward-Roger"))$out),
                      align_tags)
  }
}

# --- models -----------------------------------------------------------------

test_that("sleepstudy REML fit prints as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy)))
  lmm_print_parity(pair)
  out <- printed(pair$fit)$out
  expect_identical(out[1L], "Linear mixed model fit by REML ['lmm']")
  expect_true(any(startsWith(out, "REML criterion at convergence: ")))
  # other print options
  expect_same_print(printed(summary(pair$fit), show.resids = FALSE, ranef.comp = "Std.Dev.")$out,
                    align_lmertest(printed(summary(lmertest(pair$ref)), show.resids = FALSE, ranef.comp = "Std.Dev.")$out), align_tags)
  expect_same_print(printed(summary(pair$fit), correlation = FALSE)$out,
                    align_lmertest(printed(summary(lmertest(pair$ref)), correlation = FALSE)$out), align_tags)
  expect_same_print(printed(summary(pair$fit), symbolic.cor = TRUE)$out,
                    align_lmertest(printed(summary(lmertest(pair$ref)), symbolic.cor = TRUE)$out), align_tags)
  expect_same_print(printed(pair$fit, ranef.comp = c("Variance", "Std.Dev."))$out,
                    printed(pair$ref, ranef.comp = c("Variance", "Std.Dev."))$out, align_tags)
  expect_same_print(printed(VarCorr(pair$fit), comp = c("Variance", "Std.Dev."))$out,
                    printed(VarCorr(pair$ref), comp = c("Variance", "Std.Dev."))$out, align_tags)
  expect_same_print(printed(VarCorr(pair$fit), comp = "Variance", digits = 3)$out,
                    printed(VarCorr(pair$ref), comp = "Variance", digits = 3)$out, align_tags)
  expect_same_print(printed(ranef(pair$fit))$out,
                    printed(lme4::ranef(pair$ref))$out, align_tags)
})

test_that("sleepstudy ML fit prints the AIC table as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE)))
  lmm_print_parity(pair)
  expect_identical(printed(pair$fit)$out[1L],
                   "Linear mixed model fit by maximum likelihood  ['lmm']")
})

test_that("uncorrelated terms (||) print as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  lmm_print_parity(fit_pair(quote(lmm(Reaction ~ Days + (Days || Subject), sleepstudy))))
})

test_that("crossed random effects (Penicillin) print as lme4", {
  skip_if_not_installed("lme4")
  Penicillin <- lme4::Penicillin
  lmm_print_parity(fit_pair(quote(lmm(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin))))
})

test_that("nested random effects (Pastes) print as lme4", {
  skip_if_not_installed("lme4")
  Pastes <- lme4::Pastes
  lmm_print_parity(fit_pair(quote(lmm(strength ~ 1 + (1 | batch/cask), Pastes))))
})

test_that("weights and offset lines print as lme4", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  ss$w <- 1 + as.integer(ss$Subject) %% 3
  ss$off <- ss$Days / 10
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (1 | Subject), ss, weights = w, offset = off)))
  lmm_print_parity(pair)
  out <- printed(summary(pair$fit))$out
  expect_true("Weights: w" %in% out)
  expect_true(" Offset: off" %in% out)
})

test_that("subset line prints as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  pair <- fit_pair(quote(lmm(Reaction ~ Days + (Days | Subject), sleepstudy, subset = Days > 0)))
  lmm_print_parity(pair)
  expect_true(" Subset: Days > 0" %in% printed(summary(pair$fit))$out)
})

test_that("factor slopes with a wide correlation block print as lme4", {
  skip_if_not_installed("lme4")
  mach <- data.frame(score = nlme::Machines$score,
                     Machine = factor(as.character(nlme::Machines$Machine)),
                     Worker = factor(as.character(nlme::Machines$Worker)))
  lmm_print_parity(fit_pair(quote(lmm(score ~ Machine + (0 + Machine | Worker), mach))))
})

test_that("several terms on one factor print as lme4", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  lmm_print_parity(fit_pair(quote(
    lmm(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy))))
})

test_that("singular fit prints the convergence message as lme4", {
  skip_if_not_installed("lme4")
  Dyestuff2 <- lme4::Dyestuff2
  pair <- fit_pair(quote(lmm(Yield ~ 1 + (1 | Batch), Dyestuff2)))
  lmm_print_parity(pair)
  expect_true(any(grepl("boundary (singular) fit", printed(summary(pair$fit))$out, fixed = TRUE)))
  expect_true(any(grepl("1 lme4 warnings", printed(pair$fit)$out, fixed = TRUE)))
})

test_that("rank-deficient X prints the fit warning as lme4", {
  skip_if_not_installed("lme4")
  ss <- lme4::sleepstudy
  ss$Days2 <- 2 * ss$Days
  pair <- fit_pair(quote(lmm(Reaction ~ Days + Days2 + (1 | Subject), ss)))
  lmm_print_parity(pair)
})

test_that("correlation of many fixed effects follows lme4's rule", {
  skip_if_not_installed("lme4")
  cake <- lme4::cake
  pair <- fit_pair(quote(lmm(angle ~ recipe * temperature + (1 | recipe:replicate), cake)))
  expect_gt(length(fixef(pair$fit)), getOption("lme4.summary.cor.max", 12))
  lmm_print_parity(pair)
  s_fit <- printed(summary(pair$fit))
  expect_false(any(grepl("Correlation of Fixed Effects", s_fit$out)))
  expect_true(any(grepl("Correlation matrix not shown by default", s_fit$msgs)))
  # asked for explicitly, the (wide, abbreviated) matrix is printed
  expect_same_print(printed(summary(pair$fit), correlation = TRUE)$out,
                    align_lmertest(printed(summary(lmertest(pair$ref)), correlation = TRUE)$out), align_tags)
  expect_same_print(printed(summary(pair$fit, correlation = TRUE), correlation = TRUE)$out,
                    align_lmertest(printed(summary(lmertest(pair$ref), correlation = TRUE), correlation = TRUE)$out), align_tags)
})

test_that("the ddf argument selects the title and the table", {
  skip_if_not_installed("lme4")
  sleepstudy <- lme4::sleepstudy
  fit <- lmm(Reaction ~ Days + (Days | Subject), sleepstudy)
  expect_identical(printed(summary(fit))$out[1L],
                   "Linear mixed model fit by REML. t-tests use Satterthwaite's method ['lmm']")
  expect_identical(printed(summary(fit, ddf = "Kenward-Roger"))$out[1L],
                   "Linear mixed model fit by REML. t-tests use Kenward-Roger's method ['lmm']")
  expect_identical(printed(summary(fit, ddf = "lme4"))$out[1L],
                   "Linear mixed model fit by REML ['lmm']")
  expect_s3_class(summary(fit, ddf = "lme4"), "summary.lmm")
})
