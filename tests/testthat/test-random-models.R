# Randomized comparison with lme4 run to full precision (generators and
# checks in helper-random-models.R; bench/random-models.R runs many more).
#
# Every model comes from its own seed; a failure names the kind, the seed,
# the model and the numbers, e.g. to reproduce one:
#   r <- compare_random_lmm(random_lmm("small", 10)); random_model_problems(r)
# Checks per model:
# * the log-likelihood is no worse than lme4's by more than 1e-3;
# * where the optima agree (log-likelihoods within 1e-6), the fixed effects
#   are within 5e-3 of lme4's standard errors;
# * standard errors within 5e-3 (relative) of a reference: for LMMs lme4's
#   vcov() (or, where the optima differ, lme4's formula at our theta); for
#   GLMMs with nAGQ >= 1 sqrt(diag(2 H^-1)) from the Richardson-extrapolated
#   Hessian H of lme4's stage-2 criterion f(c(theta, beta)) at our estimates
#   (f computed exactly and checked against glmer(devFunOnly = TRUE), whose
#   own values jump by ~1e-5 between nearby points); for nAGQ = 0 lme4's
#   vcov() (or its R_X at our theta).
# * for nAGQ = 0 the criterion compared is the one optimized, glmer's stage-1
#   deviance function of theta, evaluated by lme4 at both estimates.
# (5e-3 SE and 5e-3 relative: far above the ~1e-6 at which the two packages
# agree at a common optimum, far below a wrong optimum or a wrong Hessian.)

skip_if_not_installed("lme4")

# Seeds per kind: 480 LMMs (about 25 s) and 280 GLMMs (about 90 s) on a
# 2-core machine.
lmm_seeds <- seq_len(60)
glmm_seeds <- seq_len(40)

# Runs `compare(generate(kind, seed))` for every kind and seed; an error of
# either package is a problem of that model too.
random_problems <- function(kinds, seeds, generate, compare) {
  out <- character()
  for (kind in kinds) for (seed in seeds) {
    problems <- tryCatch(random_model_problems(compare(generate(kind, seed))),
                         error = function(e) {
                           sprintf("%s seed %d: error: %s", kind, seed, conditionMessage(e))
                         })
    out <- c(out, problems)
  }
  out
}

test_that("random LMMs reach lme4's optimum with its estimates and standard errors", {
  problems <- random_problems(random_lmm_kinds, lmm_seeds, random_lmm, compare_random_lmm)
  # the small random-slope model of issue 13
  problems <- c(problems, random_problems("small_slopes", 551L, random_lmm,
                                          compare_random_lmm))
  expect(length(problems) == 0L,
         paste(c(sprintf("%d failed checks of random LMMs:", length(problems)), problems),
               collapse = "\n"))
})

test_that("random GLMMs reach glmer's optimum with its estimates and standard errors", {
  problems <- random_problems(random_glmm_kinds, glmm_seeds, random_glmm, compare_random_glmm)
  expect(length(problems) == 0L,
         paste(c(sprintf("%d failed checks of random GLMMs:", length(problems)), problems),
               collapse = "\n"))
})
