# `make demo`: fits real models with mixedrs and lme4 side by side, prints mixedrs' summaries and
# both timings.
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
data("sleepstudy", "Penicillin", "Pastes", "InstEval", "cbpp", "VerbAgg", package = "lme4")

models <- list(
  list(name = "sleepstudy: Reaction ~ Days + (Days | Subject)",
       formula = Reaction ~ Days + (Days | Subject), data = sleepstudy),
  list(name = "Penicillin: diameter ~ 1 + (1 | plate) + (1 | sample)",
       formula = diameter ~ 1 + (1 | plate) + (1 | sample), data = Penicillin),
  list(name = "Pastes: strength ~ 1 + (1 | batch/cask)",
       formula = strength ~ 1 + (1 | batch/cask), data = Pastes),
  list(name = "InstEval (73k rows): y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)",
       formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept), data = InstEval)
)

glmms <- list(
  list(name = "cbpp: cbind(incidence, size - incidence) ~ period + (1 | herd), binomial",
       formula = cbind(incidence, size - incidence) ~ period + (1 | herd), data = cbpp),
  list(name = "VerbAgg (7584 rows): r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), binomial",
       formula = r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item), data = VerbAgg)
)

timings <- data.frame(model = character(), lme4_s = numeric(), mixedrs_s = numeric(),
                      speedup = numeric(), criterion_diff = numeric())
for (m in models) {
  cat("\n====", m$name, "====\n")
  t_ours <- system.time(fit <- lmm(m$formula, data = m$data))[["elapsed"]]
  t_lme4 <- system.time(ref <- lmer(m$formula, data = m$data))[["elapsed"]]
  print(summary(fit))
  timings[nrow(timings) + 1, ] <- list(
    sub(":.*", "", m$name), t_lme4, t_ours, t_lme4 / t_ours,
    REMLcrit(fit) - lme4::REMLcrit(ref))
}
for (m in glmms) {
  cat("\n====", m$name, "====\n")
  t_ours <- system.time(fit <- glmm(m$formula, data = m$data, family = binomial))[["elapsed"]]
  t_lme4 <- system.time(ref <- glmer(m$formula, data = m$data, family = binomial))[["elapsed"]]
  print(summary(fit))
  timings[nrow(timings) + 1, ] <- list(
    sub(":.*", "", m$name), t_lme4, t_ours, t_lme4 / t_ours,
    -2 * (as.numeric(logLik(fit)) - as.numeric(logLik(ref))))
}
cat("\n==== Timings (seconds, one fit each; criterion_diff = mixedrs - lme4,",
    "REML criterion or -2 logLik: negative means mixedrs found a better optimum) ====\n")
print(format(timings, digits = 3), row.names = FALSE)
