# `make bench` (second part): inference and prediction tools of mixedrs against the packages
# users reach for today (lmerTest, pbkrtest, lme4), run side by side in one R process,
# alternating, several repetitions each. Fits are made once per model; each row times only the
# tool (except the first rows, where lmerTest's df machinery runs at fit time, so fit + summary
# is timed on both sides). Results go to bench/RESULTS.md and the README between the
# bench-inference markers. Run from the repository root after installing the package.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(mixedrs)
})
source(file.path("bench", "suite.R"))  # write_results_section(), write_readme_block()
data("sleepstudy", "cake", "InstEval", "cbpp", package = "lme4")

set.seed(11)
sim2k <- data.frame(g = factor(sample.int(100, 2000, replace = TRUE)),
                    h = factor(sample.int(40, 2000, replace = TRUE)),
                    x = rnorm(2000))
sim2k$y <- 0.4 * sim2k$x + rnorm(100)[sim2k$g] + 0.5 * rnorm(40)[sim2k$h] + rnorm(2000)
new_inst <- InstEval[sample.int(nrow(InstEval), 10000), ]

quiet <- function(expr) suppressMessages(suppressWarnings(expr))

f_ss <- Reaction ~ Days + (Days | Subject)
f_inst <- y ~ service + (1 | s) + (1 | d) + (1 | dept)
f_cake <- angle ~ recipe * temperature + (1 | recipe:replicate)
f_sim <- y ~ x + (1 | g) + (1 | h)
fits <- quiet(list(
  ss = list(ref = lme4::lmer(f_ss, sleepstudy), ours = lmm(f_ss, sleepstudy)),
  ss0 = list(ref = lme4::lmer(Reaction ~ 1 + (Days | Subject), sleepstudy),
             ours = lmm(Reaction ~ 1 + (Days | Subject), sleepstudy)),
  cake = list(ref = lme4::lmer(f_cake, cake), ours = lmm(f_cake, cake)),
  sim = list(ref = lme4::lmer(f_sim, sim2k), ours = lmm(f_sim, sim2k)),
  inst = list(ref = lme4::lmer(f_inst, InstEval), ours = lmm(f_inst, InstEval)),
  cbpp = list(ref = glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                          family = binomial),
              ours = glmm(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
                          family = binomial))
))

# Each task: what is timed, on which model, the reference call and ours (functions of the
# fitted pair), and the number of repetitions.
tasks <- list(
  list(task = "fit + summary, Satterthwaite df", model = "sleepstudy", reps = 10,
       ref = function(p) summary(lmerTest::lmer(f_ss, sleepstudy)),
       ours = function(p) summary(lmm(f_ss, sleepstudy))),
  list(task = "fit + summary, Satterthwaite df", model = "InstEval (73k)", reps = 1,
       ref = function(p) summary(lmerTest::lmer(f_inst, InstEval)),
       ours = function(p) summary(lmm(f_inst, InstEval))),
  list(task = "summary, Kenward-Roger df", model = "cake (270)", pair = "cake", reps = 3,
       ref = function(p) summary(as_lmerModLmerTest(p$ref), ddf = "Kenward-Roger"),
       ours = function(p) summary(p$ours, ddf = "Kenward-Roger")),
  list(task = "summary, Kenward-Roger df", model = "crossed (2000)", pair = "sim", reps = 1,
       ref = function(p) summary(as_lmerModLmerTest(p$ref), ddf = "Kenward-Roger"),
       ours = function(p) summary(p$ours, ddf = "Kenward-Roger")),
  # pbkrtest forms n x n matrices (73421^2 doubles, 43 GB each): not run.
  list(task = "summary, Kenward-Roger df", model = "InstEval (73k)", pair = "inst", reps = 3,
       ref = NULL,
       ours = function(p) summary(p$ours, ddf = "Kenward-Roger")),
  list(task = "anova, type III Satterthwaite", model = "cake (270)", pair = "cake", reps = 5,
       ref = function(p) anova(as_lmerModLmerTest(p$ref)),
       ours = function(p) anova(p$ours)),
  list(task = "anova, LRT with ML refits", model = "sleepstudy", reps = 10,
       ref = function(p) quiet(anova(fits$ss0$ref, fits$ss$ref)),
       ours = function(p) quiet(anova(fits$ss0$ours, fits$ss$ours))),
  list(task = "confint, profile", model = "sleepstudy", pair = "ss", reps = 3,
       ref = function(p) quiet(confint(p$ref)),
       ours = function(p) quiet(confint(p$ours))),
  list(task = "confint, profile", model = "cbpp (binomial)", pair = "cbpp", reps = 3,
       ref = function(p) quiet(confint(p$ref)),
       ours = function(p) quiet(confint(p$ours))),
  # lme4's profile refits InstEval at every point (each refit about as long as its fit, 20 s
  # and more here): not run.
  list(task = "confint, profile, parm = \"theta_\"", model = "InstEval (73k)", pair = "inst",
       reps = 1, ref = NULL,
       ours = function(p) quiet(confint(p$ours, parm = "theta_"))),
  list(task = "confint, bootstrap (500)", model = "sleepstudy", pair = "ss", reps = 1,
       ref = function(p) quiet(confint(p$ref, method = "boot", nsim = 500)),
       ours = function(p) quiet(confint(p$ours, method = "boot", nsim = 500))),
  list(task = "confint, bootstrap (200)", model = "cbpp (binomial)", pair = "cbpp", reps = 1,
       ref = function(p) quiet(confint(p$ref, method = "boot", nsim = 200)),
       ours = function(p) quiet(confint(p$ours, method = "boot", nsim = 200))),
  list(task = "ranef with conditional variances", model = "InstEval (73k)", pair = "inst",
       reps = 3,
       ref = function(p) ranef(p$ref, condVar = TRUE),
       ours = function(p) ranef(p$ours, condVar = TRUE)),
  list(task = "predict, 10k new rows", model = "InstEval (73k)", pair = "inst", reps = 3,
       ref = function(p) predict(p$ref, new_inst),
       ours = function(p) predict(p$ours, new_inst)),
  list(task = "simulate, nsim = 1000", model = "sleepstudy", pair = "ss", reps = 5,
       ref = function(p) simulate(p$ref, nsim = 1000, seed = 1),
       ours = function(p) simulate(p$ours, nsim = 1000, seed = 1))
)

elapsed <- function(fun, pair) {
  gc(FALSE)
  t0 <- proc.time()[["elapsed"]]
  fun(pair)
  proc.time()[["elapsed"]] - t0
}

rows <- lapply(tasks, function(t) {
  cat("benchmarking", t$task, "on", t$model, "...\n")
  pair <- if (!is.null(t$pair)) fits[[t$pair]]
  t_ref <- t_ours <- numeric(t$reps)
  for (r in seq_len(t$reps)) {
    t_ref[r] <- if (is.null(t$ref)) NA_real_ else elapsed(t$ref, pair)
    t_ours[r] <- elapsed(t$ours, pair)
  }
  data.frame(task = t$task, model = t$model, reference_s = median(t_ref),
             mixedrs_s = median(t_ours), speedup = median(t_ref) / median(t_ours))
})
res <- do.call(rbind, rows)
print(res, digits = 4)

fmt <- function(x, d) ifelse(is.na(x), "–", formatC(x, format = "f", digits = d))
table_lines <- c(
  "| task | model | lme4 / lmerTest / pbkrtest (s) | mixedrs (s) | speedup |",
  "|---|---|---:|---:|---:|",
  sprintf("| %s | %s | %s | %s | %s |", res$task, res$model, fmt(res$reference_s, 3),
          fmt(res$mixedrs_s, 4), ifelse(is.na(res$speedup), "–", paste0(fmt(res$speedup, 1), "×"))),
  "",
  paste("–: not run. pbkrtest's Kenward-Roger forms n × n matrices (43 GB each for InstEval);",
        "lme4's profile refits InstEval at each of its points.")
)
info <- sprintf(paste("Median of alternating repetitions in one R %s process on %d cores (%s);",
                      "lme4 %s, lmerTest %s, pbkrtest %s, mixedrs %s."),
                format(getRversion()), parallel::detectCores(), format(Sys.Date()),
                packageVersion("lme4"), packageVersion("lmerTest"), packageVersion("pbkrtest"),
                packageVersion("mixedrs"))

write_results_section("## Inference and prediction", c(info, "", table_lines))
write_readme_block("bench-inference", c(info, "", table_lines))
cat("\nwrote the inference table to bench/RESULTS.md and the README\n")
