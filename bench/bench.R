# `make bench`: lme4 and mixedrs fit the same models in one R process, alternating, several
# repetitions each; the medians, their ratio and the difference in the optimized criterion go
# to bench/RESULTS.md. Run from the repository root after installing the package.
suppressPackageStartupMessages({
  library(lme4)
  library(mixedrs)
})
data("sleepstudy", "Penicillin", "Pastes", "InstEval", "cbpp", "VerbAgg", package = "lme4")

# Seeded crossed design: subjects x items with skewed item frequencies.
simulate_crossed <- function(n, n_subj, n_item, seed) {
  set.seed(seed)
  item_p <- 1 / seq_len(n_item)^0.7
  d <- data.frame(
    subj = factor(sample.int(n_subj, n, replace = TRUE)),
    item = factor(sample.int(n_item, n, replace = TRUE, prob = item_p)),
    x = rnorm(n)
  )
  d$y <- 0.3 * d$x + rnorm(n_subj, sd = 0.6)[d$subj] + rnorm(n_item, sd = 0.4)[d$item] +
    rnorm(n)
  d
}

suite <- list(
  list(name = "sleepstudy", formula = Reaction ~ Days + (Days | Subject),
       data = sleepstudy, reps = 20),
  list(name = "Penicillin", formula = diameter ~ 1 + (1 | plate) + (1 | sample),
       data = Penicillin, reps = 20),
  list(name = "Pastes (nested)", formula = strength ~ 1 + (1 | batch/cask),
       data = Pastes, reps = 20),
  list(name = "crossed 50k", formula = y ~ x + (1 | subj) + (1 | item),
       data = simulate_crossed(50000, 800, 300, 1), reps = 3),
  list(name = "InstEval (73k)", formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept),
       data = InstEval, reps = 3),
  list(name = "cbpp (binomial)", formula = cbind(incidence, size - incidence) ~ period + (1 | herd),
       data = cbpp, reps = 10, family = binomial),
  list(name = "VerbAgg (binomial)", formula = r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item),
       data = VerbAgg, reps = 3, family = binomial)
)

time_fit <- function(fun, formula, data, family) {
  gc(FALSE)
  t0 <- proc.time()[["elapsed"]]
  fit <- suppressMessages(suppressWarnings(
    if (is.null(family)) fun(formula, data = data) else fun(formula, data = data, family = family)))
  list(time = proc.time()[["elapsed"]] - t0, fit = fit)
}

# The optimized criterion: REML criterion of an LMM, -2 logLik of a GLMM.
criterion <- function(fit) {
  if (inherits(fit, c("glmm", "glmerMod"))) -2 * as.numeric(logLik(fit)) else
    if (inherits(fit, "lmm")) mixedrs::REMLcrit(fit) else lme4::REMLcrit(fit)
}

rows <- lapply(suite, function(m) {
  cat("benchmarking", m$name, "...\n")
  t_lme4 <- t_ours <- numeric(m$reps)
  for (r in seq_len(m$reps)) {
    glm <- !is.null(m$family)
    a <- time_fit(if (glm) lme4::glmer else lme4::lmer, m$formula, m$data, m$family)
    b <- time_fit(if (glm) mixedrs::glmm else mixedrs::lmm, m$formula, m$data, m$family)
    t_lme4[r] <- a$time
    t_ours[r] <- b$time
  }
  data.frame(
    model = m$name, n = nrow(m$data),
    lme4_s = median(t_lme4), mixedrs_s = median(t_ours),
    speedup = median(t_lme4) / median(t_ours),
    crit_diff = criterion(b$fit) - criterion(a$fit)
  )
})
res <- do.call(rbind, rows)
print(res, digits = 4)

fmt <- function(x, d) formatC(x, format = "f", digits = d)
table_lines <- c(
  "| model | rows | lme4 (s) | mixedrs (s) | speedup | criterion: mixedrs - lme4 |",
  "|---|---:|---:|---:|---:|---:|",
  sprintf("| %s | %d | %s | %s | %s× | %s |", res$model, res$n, fmt(res$lme4_s, 3),
          fmt(res$mixedrs_s, 4), fmt(res$speedup, 1), formatC(res$crit_diff, format = "e", digits = 1))
)
info <- sprintf(paste("Median of alternating repetitions in one R %s process on %d cores (%s); lme4 %s, mixedrs %s.",
                      "Criterion: REML criterion (LMMs) or -2 logLik (GLMMs); negative = mixedrs found a better optimum."),
                format(getRversion()), parallel::detectCores(), format(Sys.Date()),
                packageVersion("lme4"), packageVersion("mixedrs"))
writeLines(c("# Benchmark: mixedrs vs lme4", "", info, "", table_lines),
           file.path("bench", "RESULTS.md"))

# The README shows the same table between its bench markers.
readme <- readLines("README.md")
start <- grep("<!-- bench:start -->", readme, fixed = TRUE)
end <- grep("<!-- bench:end -->", readme, fixed = TRUE)
if (length(start) == 1L && length(end) == 1L && end > start) {
  readme <- c(readme[seq_len(start)], info, "", table_lines, readme[end:length(readme)])
  writeLines(readme, "README.md")
}
cat("\nwrote bench/RESULTS.md and the README table\n")
