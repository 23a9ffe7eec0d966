# Reference fits run to full precision (DESIGN.md, section 6).
#
# lme4's defaults stop short of the optimum: lmer's optimizer ~1e-5 away in
# theta, glmer's Nelder-Mead second stage and PIRLS tolerance up to ~1e-3 in
# the deviance. Where they stop moves with the BLAS and lme4's version, so a
# test comparing with them passes on one machine and fails on another. Every
# comparison with lme4, lmerTest or pbkrtest is therefore made with fits run
# to full precision (these helpers), or at the same parameter values.

# The control of an lmer() fit run to full precision, as a call (so that it
# can be put into a call that update() or lmerTest re-evaluates anywhere).
lmer_full_control_call <- quote(lme4::lmerControl(optimizer = "bobyqa",
                                                  optCtrl = list(rhoend = 1e-12)))

lmer_full_control <- function() eval(lmer_full_control_call)

# lme4::lmer(...) (lmerTest::lmer(...)) with the full-precision control.
# The call is rebuilt so that the fit stores the caller's expressions (data =
# sleepstudy, weights = w), as a direct call to lmer() would.
lmer_full <- function(...) {
  call <- match.call()
  call[[1L]] <- quote(lme4::lmer)
  call$control <- lmer_full_control_call
  eval(call, parent.frame())
}

lmerTest_full <- function(...) {
  call <- match.call()
  call[[1L]] <- quote(lmerTest::lmer)
  call$control <- lmer_full_control_call
  eval(call, parent.frame())
}

# Turns a quoted lmm()-style call into the call of lme4::lmer() (or `fun`)
# run to full precision.
as_lmer_full_call <- function(call, fun = quote(lme4::lmer)) {
  call[[1L]] <- fun
  call$control <- lmer_full_control_call
  call
}
