# The benchmark suite shared by bench/bench.R and its child processes (bench/fit_once.R): each
# model's name, formula, family, data (real data from lme4, or a seeded simulation), how many
# repetitions to time, and how many fits make one timed repetition (small models are fitted
# several times per repetition so that a timing is well above the clock's resolution). `peer`
# gives the formula and the extra columns for the glmm crate's Python package, whose formula
# language has no scale() or cbind(a, n - a).

# Crossed subjects x items, item frequencies skewed (probability proportional to rank^-0.7).
# `slopes`: a random slope of x by subject as well. `binary`: a logistic response.
simulate_crossed <- function(n, n_subj, n_item, seed, slopes = FALSE, binary = FALSE) {
  set.seed(seed)
  item_p <- 1 / seq_len(n_item)^0.7
  subj <- sample.int(n_subj, n, replace = TRUE)
  item <- sample.int(n_item, n, replace = TRUE, prob = item_p)
  x <- rnorm(n)
  eta <- 0.3 * x + rnorm(n_subj, sd = 0.6)[subj] + rnorm(n_item, sd = 0.4)[item]
  if (slopes) eta <- eta + rnorm(n_subj, sd = 0.3)[subj] * x
  y <- if (binary) rbinom(n, 1, plogis(eta - 0.2)) else eta + rnorm(n)
  data.frame(subj = factor(subj), item = factor(item), x = x, y = y)
}

bench_suite <- function() {
  e <- new.env()
  utils::data("sleepstudy", "Penicillin", "Pastes", "InstEval", "cbpp", "VerbAgg",
              "grouseticks", package = "lme4", envir = e)
  cbpp <- e$cbpp
  cbpp$failures <- cbpp$size - cbpp$incidence
  grouse <- e$grouseticks
  grouse$HEIGHT_scaled <- as.numeric(scale(grouse$HEIGHT))
  verbagg <- e$VerbAgg
  verbagg$r2_num <- as.integer(verbagg$r2 == "Y")
  list(
    list(name = "sleepstudy", data = e$sleepstudy, reps = 7, inner = 20,
         formula = Reaction ~ Days + (Days | Subject)),
    list(name = "Penicillin", data = e$Penicillin, reps = 7, inner = 20,
         formula = diameter ~ 1 + (1 | plate) + (1 | sample)),
    list(name = "Pastes (nested)", data = e$Pastes, reps = 7, inner = 20,
         formula = strength ~ 1 + (1 | batch/cask),
         peer = list(formula = "strength ~ 1 + (1 | batch) + (1 | sample)")),
    list(name = "InstEval", data = e$InstEval, reps = 3, inner = 1,
         formula = y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept)),
    list(name = "crossed 1M", data = simulate_crossed(1e6, 6000, 3700, 1), reps = 1, inner = 1,
         formula = y ~ x + (1 | subj) + (1 | item)),
    list(name = "crossed slopes 300k", data = simulate_crossed(3e5, 2000, 1000, 2, slopes = TRUE),
         reps = 1, inner = 1, formula = y ~ x + (x | subj) + (1 | item)),
    list(name = "cbpp (binomial)", data = cbpp, reps = 7, inner = 10, family = "binomial",
         formula = cbind(incidence, size - incidence) ~ period + (1 | herd),
         peer = list(formula = "cbind(incidence, failures) ~ period + (1 | herd)")),
    list(name = "VerbAgg (binomial)", data = verbagg, reps = 5, inner = 3, family = "binomial",
         formula = r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item),
         peer = list(formula = "r2_num ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)")),
    list(name = "grouseticks (Poisson)", data = grouse, reps = 5, inner = 1, family = "poisson",
         formula = TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION),
         peer = list(formula = paste("TICKS ~ YEAR + HEIGHT_scaled + (1 | BROOD) + (1 | INDEX)",
                                     "+ (1 | LOCATION)"))),
    list(name = "crossed binomial 30k", data = simulate_crossed(3e4, 500, 300, 3, binary = TRUE),
         reps = 3, inner = 1, family = "binomial", formula = y ~ x + (1 | subj) + (1 | item))
  )
}

# Fits model `m` with lme4 ("lme4"), glmmTMB ("glmmTMB", REML for the linear models as lme4's
# default, so that the logLiks compare) or mixedrs ("mixedrs"), warnings and messages muffled.
fit_model <- function(m, pkg) {
  glm <- !is.null(m$family)
  fun <- switch(pkg,
    lme4 = if (glm) lme4::glmer else lme4::lmer,
    glmmTMB = glmmTMB::glmmTMB,
    mixedrs = if (glm) mixedrs::glmm else mixedrs::lmm
  )
  args <- list(m$formula, data = m$data)
  if (glm) args$family <- m$family
  if (pkg == "glmmTMB" && !glm) args$REML <- TRUE
  suppressMessages(suppressWarnings(do.call(fun, args)))
}

# One small fit of `m`'s family with `pkg`, so that a measurement that follows does not count the
# one-off costs of a first call (lazy loading of R code, the shared library's pages).
warm_up <- function(m, pkg) {
  set.seed(99)
  d <- data.frame(g = factor(rep(1:10, each = 6)), x = rnorm(60))
  d$y <- switch(if (is.null(m$family)) "gaussian" else m$family,
    gaussian = d$x + rnorm(10)[d$g] + rnorm(60),
    binomial = rbinom(60, 1, 0.5),
    poisson = rpois(60, 3)
  )
  fit_model(list(formula = y ~ x + (1 | g), data = d, family = m$family), pkg)
}

# Fits `m` with `pkg` once (after a small warm-up fit, so one-off loading costs are not
# counted) and returns the fit, its elapsed time and the resident memory before it and at its
# peak (MB), read from /proc/self/status after resetting the kernel's high-water mark.
measure_fit <- function(m, pkg) {
  status_kb <- function(field) {
    line <- grep(paste0("^", field, ":"), readLines("/proc/self/status"), value = TRUE)
    as.numeric(sub("\\D*(\\d+).*", "\\1", line))
  }
  invisible(warm_up(m, pkg))
  invisible(gc(FALSE))
  before <- status_kb("VmRSS")
  writeLines("5", "/proc/self/clear_refs") # the high-water mark restarts from the current RSS
  time <- system.time(fit <- fit_model(m, pkg))[["elapsed"]]
  list(fit = fit, time = time, before_mb = before / 1024, peak_mb = status_kb("VmHWM") / 1024)
}

# The options of a benchmark script that writes one table: `--reps=K` (default `reps`) and
# `--no-write`; anything else is an error naming it.
bench_options <- function(args, reps) {
  write <- TRUE
  for (a in args) {
    if (startsWith(a, "--reps=")) {
      reps <- as.integer(sub("^--reps=", "", a))
      if (is.na(reps) || reps < 1L) stop("--reps needs a positive whole number, not ", a)
    } else if (a == "--no-write") {
      write <- FALSE
    } else {
      stop("unknown argument ", a, " (use --reps=K and --no-write)")
    }
  }
  list(reps = reps, write = write)
}

# Replaces the section `heading` ("## ...") of bench/RESULTS.md by `lines` (or appends it),
# keeping the other sections: each benchmark script owns one section.
write_results_section <- function(heading, lines) {
  results <- file.path("bench", "RESULTS.md")
  old <- if (file.exists(results)) readLines(results) else character()
  at <- match(heading, old)
  if (!is.na(at)) {
    nxt <- grep("^## ", old)
    nxt <- nxt[nxt > at]
    old <- c(old[seq_len(at - 1L)], if (length(nxt)) old[nxt[1L]:length(old)])
  }
  while (length(old) && old[length(old)] == "") old <- old[-length(old)]
  writeLines(c(old, "", heading, "", lines), results)
}

# Replaces what stands between the README's `<!-- NAME:start -->` and `<!-- NAME:end -->`
# markers by `lines`; nothing happens without both markers.
write_readme_block <- function(name, lines) {
  readme <- readLines("README.md")
  start <- grep(sprintf("<!-- %s:start -->", name), readme, fixed = TRUE)
  end <- grep(sprintf("<!-- %s:end -->", name), readme, fixed = TRUE)
  if (length(start) == 1L && length(end) == 1L && end > start) {
    writeLines(c(readme[seq_len(start)], lines, readme[end:length(readme)]), "README.md")
  }
}
