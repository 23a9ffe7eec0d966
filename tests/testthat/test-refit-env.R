# Refits through a model's call (ranova(), step(), drop1() with refits,
# update(), pbkrtest's comparisons) of a model fitted inside a function: the
# call names the function's variables, found where the model's formula was
# written, as lme4's update() finds them; side by side with lmerTest and
# lme4 on fits made the same way.
skip_if_not_installed("lmerTest")

# (lmerTest's fits with the full-precision control written into the call,
# where lmerTest's refits find it)
string_formula_lmm <- function(form, data) lmm(form, data = data)
string_formula_lmer <- function(form, data) {
  lmerTest::lmer(form, data = data,
                 control = lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
}
local_data_lmm <- function(d) lmm(Reaction ~ Days + (Days | Subject), data = d)
local_data_lmer <- function(d) {
  lmerTest::lmer(Reaction ~ Days + (Days | Subject), data = d,
                 control = lme4::lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
}

test_that("ranova() and step() of a model fitted inside a function refit it there", {
  sleep <- lme4::sleepstudy
  form <- "Reaction ~ Days + (Days | Subject)"
  ours <- string_formula_lmm(form, sleep)
  ref <- string_formula_lmer(form, sleep)
  expect_equal(as.matrix(ranova(ours)), as.matrix(lmerTest::ranova(ref)), tolerance = 1e-6,
               ignore_attr = TRUE)
  expect_equal(as.matrix(step(ours)$random), as.matrix(lmerTest::step(ref)$random),
               tolerance = 1e-6, ignore_attr = TRUE)
  ours <- local_data_lmm(sleep)
  ref <- local_data_lmer(sleep)
  expect_equal(as.matrix(ranova(ours)), as.matrix(lmerTest::ranova(ref)), tolerance = 1e-6,
               ignore_attr = TRUE)
  expect_equal(as.matrix(drop1(ours, test = "Chisq")),
               as.matrix(lme4:::drop1.merMod(ref, test = "Chisq")), tolerance = 1e-6,
               ignore_attr = TRUE)
  expect_equal(fixef(update(ours, . ~ . - Days)), lme4::fixef(update(ref, . ~ . - Days)),
               tolerance = 1e-6)
  expect_equal(pbkrtest::KRmodcomp(ours, . ~ . - Days)$test$stat,
               pbkrtest::KRmodcomp(ref, . ~ . - Days)$test$stat, tolerance = 1e-6)
})

test_that("a refit passes over a frame where the data's name holds other data", {
  sleep <- lme4::sleepstudy
  ours <- local_data_lmm(sleep)
  ref <- local_data_lmer(sleep)
  # `d` here is not the data the model was fitted to (the function's `d`)
  d <- sleep
  set.seed(1)
  d$Reaction <- sample(d$Reaction)
  expect_equal(as.matrix(ranova(ours)), as.matrix(lmerTest::ranova(ref)), tolerance = 1e-6,
               ignore_attr = TRUE)
  # update() with new data takes the caller's
  expect_equal(fixef(update(ours, data = d)),
               lme4::fixef(local_data_lmer(d)), tolerance = 1e-6)
})
