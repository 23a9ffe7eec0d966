# glmm.nb() side by side with lme4::glmer.nb() on the catalogue's glmer.nb
# models (helper-glmm-families.R: grouseticks, epil, Owls with an offset):
# theta, logLik, fixed effects, standard errors, VarCorr, and the printouts
# of print() and summary() line by line.
#
# glmer.nb is run to its optimum (bobyqa to rhoend 1e-10, PIRLS to 1e-12 or
# the tightest tolerance it reaches; see the helper). Tolerances, and why:
# - logLik: ours never below glmer.nb's by more than 1e-3 (as for glmmTMB);
#   higher by more than 1e-3 is reported and the parameters not compared.
# - theta: 2e-4 on log(theta). glmer.nb's outer search (optimize() over
#   log(theta), tol 5e-5, which lme4 1.1.31 does not let a caller change)
#   stops within about that of its optimum.
# - fixed effects: |ours - glmer.nb| < 0.02 SE + 1e-4 (SE glmer.nb's).
# - standard errors: within 2% (glmer.nb's come from its final glmer fit at
#   fixed theta, ours too: glmer.nb's printout does not count theta's
#   uncertainty).
# - random-effect standard deviations: 0.2% relatively (lme4 reports no
#   standard error for them).
# - printouts: labels exactly, numbers within 0.2% or one unit in the last
#   printed digit (helper-print.R), 2% for numbers in e-notation (tail
#   probabilities, whose relative error is z^2 times that of z).

skip_if_not_installed("lme4")
skip_if_not_installed("MASS")
skip_if_not_installed("glmmTMB")  # the Owls data

nb_cases <- Filter(function(case) case$reference == "glmer.nb", family_cases())

# The class tags differ legitimately (['glmm'] vs ['glmerMod']); applied to
# both printouts.
align_nb_tags <- function(lines) {
  lines <- gsub("['glmm']", "['glmerMod']", lines, fixed = TRUE)
  gsub("[glmm]", "[glmerMod]", lines, fixed = TRUE)
}

our_theta <- function(fit) fit$extended$sigma

compare_with_glmer_nb <- function(case) {
  fit <- mixedrs_fit(case)
  ref <- reference_fit(case)
  what <- case$name
  expect_s3_class(fit, c("glmm", "mixedrs_fit"))
  expect_identical(fit$extended$style, "glmer.nb", info = what)
  expect_identical(fit$extended$family, "nbinom2", info = what)

  th_o <- our_theta(fit)
  th_r <- lme4::getME(ref, "glmer.nb.theta")
  expect(is.numeric(th_o) && length(th_o) == 1L && abs(log(th_o) - log(th_r)) < 2e-4,
         sprintf("%s: theta %s, glmer.nb %.7g (allowed 2e-4 on log(theta))", what,
                 format(th_o, digits = 7), th_r))
  expect_equal(unname(getME(fit, "glmer.nb.theta")), unname(th_o), tolerance = 1e-12,
               info = paste(what, "getME(, 'glmer.nb.theta')"))
  # "ALL": lme4's components but the deviance function, which says it is not available
  all <- getME(fit, "ALL")
  expect_identical(sort(setdiff(names(lme4::getME(ref, "ALL")), "devfun")),
                   sort(intersect(names(all), names(lme4::getME(ref, "ALL")))), info = what)
  expect_equal(all$beta, unname(lme4::getME(ref, "beta")), tolerance = 1e-3, info = what)
  expect_error(getME(fit, "devfun"), "not available yet")
  expect_identical(stats::family(fit)$family, stats::family(ref)$family, info = what)
  expect_identical(stats::family(fit)$link, "log", info = what)

  ll_o <- stats::logLik(fit)
  ll_r <- stats::logLik(ref)
  expect_identical(as.integer(attr(ll_o, "df")), as.integer(attr(ll_r, "df")), info = what)
  expect_equal(as.numeric(stats::nobs(fit)), as.numeric(stats::nobs(ref)), info = what)
  diff <- as.numeric(ll_o) - as.numeric(ll_r)
  expect(diff >= -1e-3, sprintf("%s: logLik %.6f is below glmer.nb's %.6f by %.3g", what,
                                as.numeric(ll_o), as.numeric(ll_r), -diff))
  if (diff > 1e-3) {
    message(sprintf("%s: our logLik is higher than glmer.nb's by %.4g (%.6f vs %.6f)",
                    what, diff, as.numeric(ll_o), as.numeric(ll_r)))
    return(invisible())
  }

  fe_o <- fit$beta
  fe_r <- lme4::fixef(ref)
  se_r <- sqrt(diag(as.matrix(stats::vcov(ref))))
  expect_identical(names(fe_o), names(fe_r), info = what)
  bad <- !(abs(fe_o - fe_r) < 0.02 * se_r + 1e-4)
  expect(!any(bad), sprintf("%s: fixed effects %s differ by more than 0.02 SE + 1e-4 (ours %s, glmer.nb %s)",
                            what, paste(names(fe_r)[bad], collapse = ", "),
                            paste(signif(fe_o[bad], 7), collapse = ", "),
                            paste(signif(fe_r[bad], 7), collapse = ", ")))
  se_o <- sqrt(diag(as.matrix(stats::vcov(fit))))
  ratio <- unname(se_o / se_r)
  expect(all(abs(ratio - 1) < 0.02), sprintf("%s: standard errors / glmer.nb's = %s", what,
                                             paste(signif(ratio, 4), collapse = ", ")))
  sd_o <- random_sds(fit)
  sd_r <- random_sds(ref)
  expect_identical(names(sd_o), names(sd_r), info = what)
  expect_equal(unname(sd_o), unname(sd_r), tolerance = 2e-3, info = paste(what, "VarCorr"))
}

expect_nb_print_parity <- function(case) {
  fit <- mixedrs_fit(case)
  ref <- reference_fit(case)
  expect_same_print(printed(fit)$out, printed(ref)$out, align_nb_tags,
                    rel_tol = 2e-3, rel_tol_exp = 2e-2)
  expect_same_print(printed(summary(fit))$out, printed(summary(ref))$out, align_nb_tags,
                    rel_tol = 2e-3, rel_tol_exp = 2e-2)
}

for (case in nb_cases) {
  local({
    case <- case
    test_that(sprintf("%s: glmm.nb() against glmer.nb()", case$name), {
      compare_with_glmer_nb(case)
    })
    test_that(sprintf("%s: print() and summary() as glmer.nb's", case$name), {
      expect_nb_print_parity(case)
    })
  })
}

test_that("glmm.nb()'s family line reads as glmer.nb's", {
  case <- family_cases()[["grouseticks glmer.nb"]]
  out <- printed(mixedrs_fit(case))$out
  line <- grep("^ Family: ", out, value = TRUE)
  expect_length(line, 1L)
  expect_match(line, "^ Family: Negative Binomial\\([0-9.]+\\)  \\( log \\)$")
})
