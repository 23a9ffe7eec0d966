# `make demo`: fits real models with mixedrs and lme4 side by side, prints mixedrs' summaries and
# both timings.
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
data("sleepstudy", "Penicillin", "Pastes", "InstEval", package = "lme4")

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

timings <- data.frame(model = character(), lme4_s = numeric(), mixedrs_s = numeric(),
                      speedup = numeric(), REML_diff = numeric())
for (m in models) {
  cat("\n====", m$name, "====\n")
  t_ours <- system.time(fit <- lmm(m$formula, data = m$data))[["elapsed"]]
  t_lme4 <- system.time(ref <- lmer(m$formula, data = m$data))[["elapsed"]]
  print(summary(fit))
  timings[nrow(timings) + 1, ] <- list(
    sub(":.*", "", m$name), t_lme4, t_ours, t_lme4 / t_ours,
    REMLcrit(fit) - lme4::REMLcrit(ref))
}
cat("\n==== Timings (seconds, one fit each; REML_diff = mixedrs - lme4 criterion) ====\n")
print(format(timings, digits = 3), row.names = FALSE)
