# Parametric bootstrap of fitted "lmm" and "glmm" models (lme4's bootMer):
# responses simulated in R from the fitted model with R's random numbers (in
# lme4's order of draws), refitted in parallel by the Rust engine
# (src/rust/inference/bootstrap.rs), the statistic applied in R to light
# refitted objects.

#' Parametric bootstrap of a mixed model
#'
#' lme4's `bootMer()` for [lmm()] and [glmm()] fits, with its arguments:
#' simulates `nsim` responses from the fitted model, refits the model to each
#' of them (in parallel, in the Rust core) and applies the statistic `FUN` to
#' each refitted model.
#'
#' `bootMer()` is the same function under lme4's name, so that lme4 code
#' runs unchanged; given an lme4 fit (class `"merMod"`, where mixedrs was
#' attached after lme4) it hands everything to `lme4::bootMer()`.
#'
#' The responses are simulated as lme4's `simulate()` does, with the same
#' random number draws (first the spherical random effects of all
#' simulations, then the responses), so that for the same `seed` the
#' simulated responses equal those of `lme4::bootMer()` for unweighted
#' linear mixed models and binomial and Poisson GLMMs. Prior weights of a
#' linear mixed model scale the residual standard deviation
#' (`sigma / sqrt(w)`); Gamma responses have shape `w / sigma^2`; inverse
#' Gaussian responses are not supported. With `type = "semiparametric"` (and
#' `use.u = TRUE`, as lme4 requires) each response is the fitted values plus
#' the response residuals resampled with replacement (`sample()`, as lme4
#' draws them). Each refit is a fresh optimization
#' started from the original estimates, with the settings of the original
#' fit's `control`. Results are reproducible with `set.seed()` or `seed` and
#' do not depend on the number of threads. Memory: the responses are simulated and
#' refitted in chunks, so only the random effects of all simulations and the
#' responses of one chunk are held at once.
#'
#' Parallel computing: the refits always run in threads of the Rust engine,
#' whose results do not depend on their number. `parallel = "multicore"` or
#' `"snow"` with `ncpus` sets that number (as lme4's `ncpus` sets its
#' processes); with `parallel = "no"` (the default) the number is the fit's
#' own `threads` setting ([lmmControl()], [glmmControl()]: all cores unless
#' set there), unless `threads` is given. A cluster `cl` cannot run Rust
#' threads: giving one is an error. `FUN` is applied in this R session, so
#' the progress bar and `verbose` work whatever `parallel` says. While the
#' engine refits a chunk, Ctrl-C stops it (an error), and after two seconds a
#' line on stderr counts the refits done, where
#' `getOption("mixedrs.progress", interactive())` is `TRUE`.
#'
#' `FUN` is called (in R, one replicate after the other) with a refitted
#' object of the same class as `x`. It holds the refit's estimates and
#' supports the methods that read them: [fixef()], [ranef()], [coef()],
#' [VarCorr()], `sigma()`, `vcov()`, `logLik()`, `deviance()`,
#' `REMLcrit()`, `fitted()`, `residuals()`, `predict()` (for the fitted
#' data), `isSingular()`, `getME`-like fields (`$theta`, `$beta`, `$u`, `$b`,
#' `$y`) and `summary()`. Its model frame holds the simulated response.
#' (For a GLMM the covariance of the fixed effects of a refit comes from
#' `R_X` when the refit computed no Hessian.)
#'
#' @param x A fitted model of class `"lmm"` or `"glmm"`.
#' @param FUN A function of a fitted model returning a numeric vector (the
#'   same length for every model), e.g. [fixef()].
#' @param nsim Number of bootstrap replicates.
#' @param seed `NULL` or an integer passed to [set.seed()] first (as in
#'   lme4, the random number state is not restored).
#' @param use.u Logical: simulate conditional on the estimated random
#'   effects (`TRUE`) or draw new ones (`FALSE`, default). Give at most one
#'   of `use.u` and `re.form`.
#' @param re.form `NA` or `~0` (new random effects, the default), `NULL`
#'   (conditional on the estimated ones, as `use.u = TRUE`), or a one-sided
#'   formula of some of the model's random-effects terms, such as `~ (1 |
#'   batch)`: the responses are then simulated conditional on the estimated
#'   random effects of those terms, with new ones drawn for the others (as
#'   lme4's `bootMer()` simulates through `simulate(re.form = )`).
#' @param type `"parametric"` (simulate from the model) or
#'   `"semiparametric"` (resample the residuals; needs `use.u = TRUE`; for a
#'   GLMM lme4's warning that it is questionable is given).
#' @param verbose Logical: print each replicate's statistic (as lme4: its
#'   number, then `str()` of the value).
#' @param .progress `"none"`, `"txt"` (a [utils::txtProgressBar()]), `"tk"`
#'   (`tcltk::tkProgressBar()`, where R has Tcl/Tk and a display) or `"win"`
#'   (`winProgressBar()`, on Windows), updated as the statistics are
#'   computed.
#' @param PBargs A list of arguments for the progress bar's constructor.
#' @param parallel `"no"`, `"multicore"` or `"snow"`: see Parallel computing
#'   in Details.
#' @param ncpus Number of threads when `parallel` is not `"no"`.
#' @param cl Must be `NULL` (a cluster cannot run the engine's threads).
#' @param threads Number of threads for the refits (default `NULL`: see
#'   Parallel computing in Details); not an argument of lme4's `bootMer()`.
#' @return An object of class `c("bootmm", "bootMer", "boot")` (lme4's class after ours), as lme4's: `t0`
#'   (`FUN(x)`), `t` (an `nsim` x `length(t0)` matrix, `NA` rows for
#'   replicates whose refit or statistic failed), `R` (`nsim`), `data`,
#'   `seed` (the random number state after the simulations), `statistic`,
#'   `sim = "parametric"` (also for the semiparametric bootstrap, as lme4),
#'   `call`, `mle` (the estimates simulated from),
#'   `replicates` (a data frame of the refits' `theta`, `beta`, `sigma` and
#'   criterion, one row per replicate) and attributes `bootFail`,
#'   `boot.fail.msgs` and `boot.all.msgs`. It has `print()`, `confint()` and
#'   `as.data.frame()` methods; with the boot package, `boot::boot.ci()`
#'   works on it too.
#' @seealso [confint.lmm()] (`method = "boot"`).
#' @examplesIf requireNamespace("lme4", quietly = TRUE)
#' fit <- lmm(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
#' b <- bootmm(fit, fixef, nsim = 200, seed = 1)
#' b
#' confint(b)
#' confint(b, type = "norm")
#' head(as.data.frame(b))
#' # any statistic of the refitted model, e.g. the standard deviations
#' sds <- bootmm(fit, function(m) c(sigma = sigma(m), sd = attr(VarCorr(m)$Subject, "stddev")),
#'               nsim = 200, seed = 1)
#' confint(sds)
#' # lme4's arguments: the semiparametric bootstrap, two threads
#' b2 <- bootmm(fit, fixef, nsim = 200, seed = 1, use.u = TRUE,
#'              type = "semiparametric", parallel = "multicore", ncpus = 2)
#' confint(b2)
#' @export
bootmm <- function(x, FUN, nsim = 1, seed = NULL, use.u = FALSE, re.form = NA,
                   type = c("parametric", "semiparametric"), verbose = FALSE,
                   .progress = "none", PBargs = list(),
                   parallel = c("no", "multicore", "snow"),
                   ncpus = getOption("boot.ncpus", 1L), cl = NULL, threads = NULL) {
  mc <- match.call()
  if (inherits(x, "merMod") && requireNamespace("lme4", quietly = TRUE)) {
    if (!is.null(threads)) {
      stop("'threads' is an argument for lmm() and glmm() fits; lme4's bootMer() ",
           "of an lme4 fit has none", call. = FALSE)
    }
    boot_lme4 <- getExportedValue("lme4", "bootMer")
    return(boot_lme4(x, FUN, nsim = nsim, seed = seed, use.u = use.u, re.form = re.form,
                     type = type, verbose = verbose, .progress = .progress,
                     PBargs = PBargs, parallel = parallel, ncpus = ncpus, cl = cl))
  }
  if (!inherits(x, c("lmm", "glmm"))) {
    stop("'x' must be a model fitted by lmm() or glmm(), not an object of class '",
         class(x)[1L], "'", call. = FALSE)
  }
  require_rows(x, "bootmm()")
  FUN <- match.fun(FUN)
  nsim <- check_nsim(nsim)
  type <- match_choice(type)
  parallel <- match_choice(parallel)
  check_flag(verbose, "verbose", "bootmm()")
  if (!is.null(cl)) {
    stop("bootmm(): a cluster 'cl' cannot be used: the refits run in threads of the Rust ",
         "engine; leave 'cl' NULL and give the number of threads with 'ncpus' (or 'threads')",
         call. = FALSE)
  }
  if (is.null(threads) && parallel != "no") threads <- ncpus
  threads <- check_threads(threads)
  if (type == "semiparametric") {
    if (!missing(re.form)) {
      stop("bootmm(): 're.form' cannot be used with semiparametric bootstrapping",
           call. = FALSE)
    }
    if (!isTRUE(use.u)) {
      stop("bootmm(): semiparametric bootstrapping needs use.u = TRUE (with use.u = FALSE ",
           "it is not implemented, as in lme4)", call. = FALSE)
    }
    if (inherits(x, "glmm")) warning("semiparametric bootstrapping is questionable for GLMMs",
                                     call. = FALSE)
    conditional <- TRUE
  } else {
    conditional <- boot_conditional(x, use.u, re.form, missing(use.u), missing(re.form))
  }
  progress <- boot_progress(.progress, PBargs, nsim)
  if (!is.null(progress)) on.exit(close(progress$bar), add = TRUE)
  if (!is.null(seed)) {
    set.seed(seed)
  } else if (!exists(".Random.seed", envir = .GlobalEnv)) {
    stats::runif(1)
  }
  t0 <- FUN(x)
  if (!is.numeric(t0)) {
    stop("bootmm(): 'FUN' must return a numeric vector; FUN(x) gave an object of class '",
         class(t0)[1L], "'", call. = FALSE)
  }
  report <- function(i, value) {
    if (verbose) {
      names(value) <- names(t0)
      cat(sprintf("%5d :", i))
      utils::str(value)
    }
    if (!is.null(progress)) progress$set(progress$bar, i / nsim)
  }
  run <- if (!is.null(x$extended)) {
    # glmmTMB's families, zero inflation, dispersion models, glmm.nb(): each
    # response drawn by simulate() and refitted by the engine in turn.
    if (conditional || type == "semiparametric") {
      stop("bootmm(): for fits of the ", x$extended$family, " family or with ",
           "'ziformula'/'dispformula' only the parametric bootstrap with new random ",
           "effects (use.u = FALSE, re.form = NA) is available", call. = FALSE)
    }
    boot_run_extended(x, nsim, function(obj) FUN(obj), length(t0), report)
  } else {
    boot_run(x, nsim, conditional, threads, control_of(x, parent.frame()),
             function(obj) FUN(obj), length(t0), report = report,
             semiparametric = type == "semiparametric")
  }
  t <- run$t
  colnames(t) <- names(t0)
  boot_object(x, t0, t, nsim, FUN, mc, run)
}

#' @rdname bootmm
#' @export
bootMer <- bootmm

# lme4's progress bars: "none" (NULL), "txt", "tk" or "win", made with
# PBargs, with the function that sets their value.
boot_progress <- function(.progress, PBargs, nsim) {
  if (!is.character(.progress) || length(.progress) != 1L ||
      !.progress %in% c("none", "txt", "tk", "win")) {
    stop("bootmm(): '.progress' must be \"none\", \"txt\", \"tk\" or \"win\", not ",
         deparse1(.progress), call. = FALSE)
  }
  if (!is.list(PBargs)) stop("bootmm(): 'PBargs' must be a list", call. = FALSE)
  if (.progress == "none") return(NULL)
  if (.progress == "tk") {
    # tcltk is a base package, but R may be built without Tcl/Tk, and its
    # windows need a display.
    # Loading tcltk without a display warns; the error below says it instead.
    if (!capabilities("tcltk") ||
        !suppressWarnings(requireNamespace("tcltk", quietly = TRUE))) {
      stop("bootmm(): the \"tk\" progress bar needs R's Tcl/Tk support, which this R ",
           "lacks; use \"txt\"", call. = FALSE)
    }
    bar <- tryCatch(do.call(tcltk::tkProgressBar, PBargs), error = function(e) {
      stop("bootmm(): the \"tk\" progress bar could not be opened (",
           sub("[.[:space:]]+$", "", conditionMessage(e)), "); use \"txt\"",
           call. = FALSE)
    })
    return(list(bar = bar, set = tcltk::setTkProgressBar))
  }
  ns <- asNamespace("utils")
  make <- get0(paste0(.progress, "ProgressBar"), envir = ns, inherits = FALSE)
  set <- get0(c(txt = "setTxtProgressBar", win = "setWinProgressBar")[[.progress]],
              envir = ns, inherits = FALSE)
  if (is.null(make) || is.null(set)) {
    stop("bootmm(): the \"", .progress, "\" progress bar is not available on this platform",
         call. = FALSE)
  }
  list(bar = do.call(make, PBargs), set = set)
}

check_nsim <- function(nsim) {
  if (!is.numeric(nsim) || length(nsim) != 1L || is.na(nsim) || nsim < 1 ||
      nsim != round(nsim)) {
    stop("'nsim' must be a positive whole number, not ", deparse1(nsim), call. = FALSE)
  }
  as.integer(nsim)
}

check_threads <- function(threads) {
  if (is.null(threads)) return(0L)
  if (!is.numeric(threads) || length(threads) != 1L || is.na(threads) ||
      threads < 1 || threads != round(threads)) {
    stop("'threads' must be NULL (all cores) or a positive whole number, not ",
         deparse1(threads), call. = FALSE)
  }
  as.integer(threads)
}

# TRUE: simulate conditional on the estimated random effects; FALSE: on
# none; or the list of the bar terms conditioned on (some of the model's,
# from a re.form such as ~ (1 | g)).
boot_conditional <- function(x, use.u, re.form, use_u_missing, re_form_missing) {
  if (!use_u_missing && !re_form_missing) {
    stop("give only one of 'use.u' and 're.form'", call. = FALSE)
  }
  if (!re_form_missing) {
    if (is.null(re.form)) return(TRUE)
    if (identical(re.form, NA) || (inherits(re.form, "formula") &&
                                   identical(re.form[[length(re.form)]], 0))) {
      return(FALSE)
    }
    bars <- prediction_bars(x, re.form)
    all_terms <- vapply(model_bars(x), deparse1, "")
    if (length(bars) == 0L) return(FALSE)
    if (setequal(vapply(bars, deparse1, ""), all_terms)) return(TRUE)
    return(bars)
  }
  if (!is.logical(use.u) || length(use.u) != 1L || is.na(use.u)) {
    stop("'use.u' must be TRUE or FALSE", call. = FALSE)
  }
  use.u
}

# The control settings of the original fit (as lme4's bootMer: the call's
# control argument evaluated again, and translated as lmm()/glmm() did), or
# the defaults.
control_of <- function(x, env) {
  default <- if (inherits(x, "glmm")) glmmControl() else lmmControl()
  expr <- x$call$control
  if (is.null(expr)) return(default)
  for (e in list(env, environment(x$formula), globalenv())) {
    if (!is.environment(e)) next
    # lme4's control objects and control lists are translated as the fit did.
    ctrl <- tryCatch(as_fit_control(eval(expr, e), if (inherits(x, "glmm")) "glmm" else "lmm"),
                     error = function(err) NULL)
    if (inherits(ctrl, class(default)[1L])) return(ctrl)
  }
  default
}

# The number of threads of an engine call made after the fit (profiles,
# bootstrap refits, conditional variances, degrees of freedom): `threads`
# when the caller gave one (check_threads() turns NULL into 0), else the fit's
# own setting, `control$threads` of `control` (see control_of(); 0: all cores,
# also for settings made before the option existed).
engine_threads <- function(threads, control) {
  if (threads > 0L || is.null(control$threads)) return(as.integer(threads))
  as.integer(control$threads)
}

# Term-wise Z b for per-term coefficient vectors (level-major), as the engine
# lays them out.
boot_zb <- function(reterms, b_terms) {
  out <- 0
  for (i in seq_along(reterms)) {
    t <- reterms[[i]]
    q <- length(t$cnms)
    bm <- matrix(b_terms[[i]], ncol = q, byrow = TRUE)
    z <- as.matrix(t$Z)
    out <- out + rowSums(z * bm[as.integer(t$factor), , drop = FALSE])
  }
  out
}

# b = T u per term from spherical effects u (all terms, level-major).
boot_b_from_u <- function(x, u) {
  q <- vapply(x$reterms, function(t) length(t$cnms), 1L)
  nl <- vapply(x$reterms, function(t) nlevels(t$factor), 1L)
  thetas <- split_theta(x$theta, x$reterms)
  ends <- cumsum(q * nl)
  lapply(seq_along(q), function(i) {
    ui <- u[seq.int(ends[i] - q[i] * nl[i] + 1L, length.out = q[i] * nl[i])]
    tm <- matrix(0, q[i], q[i])
    tm[lower.tri(tm, diag = TRUE)] <- thetas[[i]]
    as.vector(tm %*% matrix(ui, nrow = q[i]))
  })
}

# How responses are simulated: the linear predictor without (or with) the
# estimated random effects, the scale and the family's generator.
boot_simulator <- function(x, conditional, semiparametric = FALSE) {
  glmm_fit <- inherits(x, "glmm")
  X <- x$X
  eta <- drop(X %*% x$beta) + x$offset
  if (conditional) eta <- eta + boot_zb(x$reterms, lapply(x$b, function(m) as.vector(t(m))))
  n <- length(eta)
  w <- x$weights
  sigma <- x$sigma
  if (semiparametric) {
    # lme4: fitted(x) + sample(residuals(x, "response"), replace = TRUE).
    fit_vals <- if (glmm_fit) as.vector(x$mu) else as.vector(x$fitted)
    res <- as.vector(x$y) - fit_vals
    draw <- function(eta_k) fit_vals + sample(res, replace = TRUE)
  } else if (!glmm_fit) {
    draw <- function(eta_k) eta_k + sigma * stats::rnorm(n) / sqrt(w)
  } else {
    fam <- x$family
    draw <- switch(
      fam$family,
      binomial = {
        if (any(abs(w - round(w)) > 1e-8)) {
          stop("cannot simulate from non-integer prior weights (numbers of trials)",
               call. = FALSE)
        }
        # (a row of zero trials is 0, as glm()'s binomial initialize sets it)
        function(eta_k) {
          ifelse(w > 0, stats::rbinom(n, size = w, prob = fam$linkinv(eta_k)) / w, 0)
        }
      },
      poisson = function(eta_k) as.double(stats::rpois(n, fam$linkinv(eta_k))),
      Gamma = function(eta_k) {
        shape <- w / sigma^2
        stats::rgamma(n, shape = shape, rate = shape / fam$linkinv(eta_k))
      },
      gaussian = function(eta_k) stats::rnorm(n, fam$linkinv(eta_k), sigma / sqrt(w)),
      inverse.gaussian = {
        # As simulate(): statmod's generator, shape w / sigma^2.
        if (!requireNamespace("statmod", quietly = TRUE)) {
          stop("simulating inverse Gaussian responses needs the 'statmod' ",
               "package: install.packages(\"statmod\")", call. = FALSE)
        }
        rinvgauss <- getExportedValue("statmod", "rinvgauss")
        function(eta_k) rinvgauss(n, mean = fam$linkinv(eta_k), shape = w / sigma^2)
      },
      stop("bootstrap simulation is not implemented for the ", fam$family,
           " family", call. = FALSE)
    )
    if (fam$family %in% c("Gamma", "gaussian", "inverse.gaussian") && any(w == 0)) {
      # A row of prior weight 0 adds nothing to the refit's likelihood; its
      # draw (scale infinite or shape 0) is replaced by its mean, a valid value.
      draw_all <- draw
      draw <- function(eta_k) {
        y <- draw_all(eta_k)
        y[w == 0] <- fam$linkinv(eta_k[w == 0])
        y
      }
    }
  }
  # Random effects per simulation: sigma-scaled for linear mixed models.
  re_scale <- if (glmm_fit) 1 else sigma
  list(eta = eta, draw = draw, re_scale = re_scale, q = length(x$u),
       conditional = conditional)
}

# Simulates, refits (in chunks) and evaluates `stat` on each refitted object.
# `stat = NULL` asks for the default statistic (sd/cor, sigma, fixed effects)
# straight from the refits' estimates, without building objects.
# `report(i, value)`, when given, is called after replicate i's statistic.
boot_run <- function(x, nsim, conditional, threads, control, stat, k,
                     fast = NULL, report = NULL, semiparametric = FALSE) {
  control <- replicate_control(control, "the bootstrap")
  partial <- is.list(conditional)
  sim <- boot_simulator(x, !partial && conditional, semiparametric)
  n <- length(sim$eta)
  # lme4's order: the spherical random effects of every simulation first.
  U <- if (!partial && !sim$conditional && sim$q > 0) {
    matrix(stats::rnorm(sim$q * nsim), ncol = nsim)
  }
  RE <- NULL
  if (partial) {
    # Conditional on the estimated random effects of some terms, new ones
    # for the others: as simulate(x, re.form = ) draws them.
    core <- predict_core(x, NULL, conditional, FALSE, stats::na.omit)
    sim$eta <- as.vector(core$eta)
    cond_terms <- vapply(conditional, deparse1, "")
    sim_bars <- Filter(function(b) !deparse1(b) %in% cond_terms, model_bars(x))
    RE <- sim$re_scale * simulate_random_effects(x, sim_bars, NULL, core, FALSE, nsim)
  }
  chunk <- max(8L, as.integer(2^22 %/% max(n, 1L)))
  inputs <- fit_engine_inputs(x)
  glmm_fit <- inherits(x, "glmm")
  t <- matrix(NA_real_, nsim, k)
  reps <- vector("list", nsim)
  msgs <- list(message = character(), warning = character(), error = character())
  start <- 1L
  while (start <= nsim) {
    idx <- seq.int(start, min(nsim, start + chunk - 1L))
    eta_k <- matrix(sim$eta, n, length(idx))
    if (!is.null(RE)) eta_k <- eta_k + RE[, idx, drop = FALSE]
    if (!is.null(U)) {
      for (j in seq_along(idx)) {
        b <- boot_b_from_u(x, U[, idx[j]])
        eta_k[, j] <- eta_k[, j] + sim$re_scale * boot_zb(x$reterms, b)
      }
    }
    Y <- vapply(seq_along(idx), function(j) sim$draw(eta_k[, j]), numeric(n))
    Y <- matrix(as.double(Y), n, length(idx))
    raws <- boot_refit(x, inputs, Y, control, threads)
    for (j in seq_along(idx)) {
      i <- idx[j]
      raw <- raws[[j]]
      if (!is.null(raw$error)) {
        msgs$error <- c(msgs$error, raw$error)
        reps[[i]] <- list(error = raw$error)
        if (!is.null(report)) report(i, rep(NA_real_, k))
        next
      }
      reps[[i]] <- boot_summary(x, raw)
      if (boot_refit_singular(x, raw)) {
        msgs$message <- c(msgs$message, "boundary (singular) fit: see help('isSingular')")
      }
      if (length(raw$optinfo$messages) || length(raw$messages)) {
        msgs$warning <- c(msgs$warning, raw$optinfo$messages, raw$messages)
      }
      val <- if (is.null(stat)) {
        fast(x, raw)
      } else {
        boot_apply(stat, boot_refit_object(x, raw, Y[, j], control), k, msgs)
      }
      if (is.list(val) && !is.null(val$msgs)) {
        msgs <- val$msgs
        val <- val$value
      }
      if (length(val) == k) t[i, ] <- val
      if (!is.null(report)) report(i, val)
    }
    start <- max(idx) + 1L
  }
  list(t = t, replicates = reps, msgs = msgs)
}

# TRUE when a refit is singular (lme4's isSingular(): a covariance parameter
# bounded at 0 within 1e-4 of it); the LMM engine says so itself, the GLMM
# engine's refits are read off theta.
boot_refit_singular <- function(x, raw) {
  if (!is.null(raw$optinfo$singular)) return(isTRUE(raw$optinfo$singular))
  theta <- if (is.null(raw$par)) raw$theta else raw$par
  lower <- x$lower
  length(theta) == length(lower) && any(theta[lower == 0] < 1e-4)
}

# One chunk of refits by the engine: the responses Y (n x k).
boot_refit <- function(x, inputs, Y, control, threads) {
  if (inherits(x, "glmm")) {
    glmm_bootstrap_rs(inputs, x$family$family, x$family$link,
                      as.double(x$n_trials), as.double(x$eta), as.integer(x$nAGQ),
                      Y, as.double(cov_par(x)), as.double(x$beta), control,
                      engine_threads(threads, control))
  } else {
    lmm_bootstrap_rs(inputs, isTRUE(x$REML), Y, as.double(cov_par(x)),
                     control, engine_threads(threads, control))
  }
}

# Applies the statistic, collecting its messages, warnings and errors as
# bootMer does (an error gives an NA row).
boot_apply <- function(stat, obj, k, msgs) {
  value <- withCallingHandlers(
    tryCatch(stat(obj), error = function(e) {
      msgs$error <<- c(msgs$error, conditionMessage(e))
      rep(NA_real_, k)
    }),
    warning = function(w) {
      msgs$warning <<- c(msgs$warning, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      msgs$message <<- c(msgs$message, trimws(conditionMessage(m)))
      invokeRestart("muffleMessage")
    })
  if (length(value) != k || !is.numeric(value)) {
    msgs$error <- c(msgs$error, "FUN returned a value of the wrong length or type")
    value <- rep(NA_real_, k)
  }
  list(value = as.double(value), msgs = msgs)
}

# The refit's estimates in one row: theta, beta, sigma, criterion.
boot_summary <- function(x, raw) {
  glmm_fit <- inherits(x, "glmm")
  list(theta = raw$theta, beta = raw$beta,
       sigma = if (glmm_fit) boot_glmm_sigma(x, raw) else raw$sigma,
       objective = if (glmm_fit) raw$deviance else raw$objective)
}

boot_glmm_sigma <- function(x, raw) {
  if (mer_use_sc(x)) sqrt((raw$wrss + raw$ussq) / length(x$y)) else 1
}

# A refitted model object of x's class from the engine's result and the
# simulated response y (as the engine fitted it).
boot_refit_object <- function(x, raw, y, control) {
  inputs <- list(formula = x$formula, frame = boot_frame(x, y), X = x$X, y = y,
                 weights = if (inherits(x, "glmm") || isTRUE(x$has_weights)) x$weights,
                 offset = if (isTRUE(x$has_offset)) x$offset,
                 reterms = x$reterms, flist = x$flist, na.action = x$na.action,
                 n_trials = x$n_trials)
  eta <- drop(x$X %*% raw$beta) + x$offset + boot_zb(x$reterms, raw$b)
  if (inherits(x, "glmm")) {
    raw$eta <- eta
    raw$mu <- x$family$linkinv(eta)
    obj <- glmm_object(x$call, inputs, raw, x$family, x$nAGQ, control)
  } else {
    raw$fitted <- eta
    obj <- lmm_object(x$call, inputs, raw, isTRUE(x$REML))
  }
  obj
}

# The model frame with the simulated response in its first column, in the
# form of the original response.
boot_frame <- function(x, y) {
  fr <- x$frame
  old <- fr[[1L]]
  new <- if (is.matrix(old) && ncol(old) == 2L) {
    succ <- round(y * x$weights)
    m <- cbind(succ, x$weights - succ)
    dimnames(m) <- dimnames(old)
    m
  } else if (is.factor(old)) {
    factor(levels(old)[1L + (y > 0.5)], levels = levels(old))
  } else if (is.logical(old)) {
    y > 0.5
  } else {
    y
  }
  fr[[1L]] <- new
  fr
}

# The bootMer-like result.
boot_object <- function(x, t0, t, nsim, FUN, mc, run) {
  msgs <- lapply(run$msgs, function(m) table(trimws(m)))
  names(msgs) <- paste0("factory-", names(run$msgs))
  num_fail <- sum(!stats::complete.cases(t) & apply(is.na(t), 1L, all))
  if (length(run$msgs$error)) {
    warning("some bootstrap runs failed (", length(run$msgs$error), "/", nsim, ")",
            call. = FALSE)
  }
  mle <- list(beta = x$beta, theta = x$theta)
  if (!inherits(x, "glmm")) mle$sigma <- x$sigma
  s <- structure(
    list(t0 = t0, t = t, R = nsim, data = x$frame, seed = get_seed(),
         statistic = FUN, sim = "parametric", call = mc,
         ran.gen = paste0("simulate(<", class(x)[1L], ">, 1, *)"), mle = mle,
         replicates = boot_replicate_table(x, run$replicates)),
    class = c("bootmm", "bootMer", "boot"))
  attr(s, "bootFail") <- num_fail
  attr(s, "boot.fail.msgs") <- if (length(run$msgs$error)) msgs[["factory-error"]]
  attr(s, "boot.all.msgs") <- msgs
  attr(s, "boot_type") <- "boot"
  s
}

get_seed <- function() {
  if (exists(".Random.seed", envir = .GlobalEnv)) get(".Random.seed", envir = .GlobalEnv)
}

# One row per replicate: theta, beta, sigma and the criterion (NA when the
# refit failed).
boot_replicate_table <- function(x, reps) {
  nth <- length(x$theta)
  p <- length(x$beta)
  rows <- lapply(reps, function(r) {
    if (is.null(r) || !is.null(r$error)) return(rep(NA_real_, nth + p + 2L))
    c(r$theta, r$beta, r$sigma, r$objective)
  })
  out <- as.data.frame(do.call(rbind, rows))
  names(out) <- c(names(x$theta), names(x$beta), "sigma",
                  if (inherits(x, "glmm")) "deviance" else if (isTRUE(x$REML)) "REML" else "deviance")
  out
}

#' @rdname bootmm
#' @param digits Number of significant digits.
#' @param ... Ignored by `print()` and `as.data.frame()`; an error naming
#'   them for `confint()`.
#' @method print bootmm
#' @export
print.bootmm <- function(x, digits = getOption("digits"), ...) {
  cat("\nPARAMETRIC BOOTSTRAP\n\n\nCall:\n")
  dput(x$call, control = NULL)
  t <- x$t
  tab <- cbind(original = x$t0,
               bias = colMeans(t, na.rm = TRUE) - x$t0,
               "std. error" = apply(t, 2L, stats::sd, na.rm = TRUE))
  rownames(tab) <- if (is.null(names(x$t0))) paste0("t", seq_along(x$t0), "*") else names(x$t0)
  cat("\n\nBootstrap Statistics :\n")
  print(tab, digits = digits)
  nfail <- sum(apply(is.na(t), 1L, all))
  if (nfail) cat("\n", nfail, " of ", x$R, " replicates failed\n", sep = "")
  # the refits' messages, warnings and errors counted, as lme4's print
  report_boot_messages(x)
  invisible(x)
}

#' @rdname bootmm
#' @param object A `"bootmm"` object.
#' @param parm Statistics to give intervals for (indices or names; default:
#'   all); an index or name that is not a statistic is an error.
#' @param level Confidence level.
#' @param type `"perc"` (percentile, default), `"basic"` or `"norm"`
#'   (normal approximation with bootstrap bias correction), computed as
#'   `boot::boot.ci()` computes them (percentiles interpolated on the normal
#'   quantile scale); non-finite values are left out.
#' @method confint bootmm
#' @export
confint.bootmm <- function(object, parm, level = 0.95,
                           type = c("perc", "norm", "basic"), ...) {
  check_no_dots(..., caller = "confint() for a bootmm object")
  type <- match_choice(type)
  check_level(level)
  k <- length(object$t0)
  if (missing(parm)) parm <- seq_len(k)
  if (is.character(parm)) {
    idx <- match(parm, names(object$t0))
    if (anyNA(idx)) {
      stop("'parm': ", paste(sQuote(parm[is.na(idx)], FALSE), collapse = ", "),
           " is not a statistic of the bootstrap (",
           paste(sQuote(names(object$t0), FALSE), collapse = ", "), ")", call. = FALSE)
    }
    parm <- idx
  } else if (!is.numeric(parm) || anyNA(parm) || any(parm < 1 | parm > k | parm != round(parm))) {
    stop("'parm' must be names of the statistics or whole numbers from 1 to ", k,
         ", not ", deparse1(parm), call. = FALSE)
  }
  a <- (1 - level) / 2
  a <- c(a, 1 - a)
  out <- t(vapply(parm, function(i) boot_ci_one(object$t0[i], object$t[, i], level, type),
                  numeric(2)))
  dimnames(out) <- list(names(object$t0)[parm], format_perc(a))
  out
}

# One interval from replicates t and original value t0, as boot::boot.ci.
boot_ci_one <- function(t0, t, level, type) {
  t <- t[is.finite(t)]
  if (length(t) < 2L) return(c(NA_real_, NA_real_))
  switch(type,
         perc = order_stat_interp(t, (1 + c(-level, level)) / 2),
         basic = 2 * t0 - order_stat_interp(t, (1 + c(level, -level)) / 2),
         norm = {
           bias <- mean(t) - t0
           merr <- sqrt(stats::var(t)) * stats::qnorm((1 + level) / 2)
           c(t0 - bias - merr, t0 - bias + merr)
         })
}

# Bootstrap quantiles as boot's percentile intervals take them: the order
# statistic (R + 1) alpha, interpolated on the normal quantile scale between
# neighbouring order statistics; the extremes beyond the range.
order_stat_interp <- function(t, alpha) {
  R <- length(t)
  s <- sort(t)
  rk <- (R + 1) * alpha
  if (!all(rk > 1 & rk < R)) {
    warning("extreme order statistics used as endpoints", call. = FALSE)
  }
  k <- trunc(rk)
  vapply(seq_along(alpha), function(i) {
    if (k[i] == rk[i] && k[i] >= 1 && k[i] <= R) return(s[k[i]])
    if (k[i] <= 0) return(s[1L])
    if (k[i] >= R) return(s[R])
    z <- stats::qnorm(alpha[i])
    z1 <- stats::qnorm(k[i] / (R + 1))
    z2 <- stats::qnorm((k[i] + 1) / (R + 1))
    s[k[i]] + (z - z1) / (z2 - z1) * (s[k[i] + 1L] - s[k[i]])
  }, numeric(1))
}

#' @rdname bootmm
#' @param row.names,optional Ignored (present for the generic).
#' @details `as.data.frame()` gives the replicates of the statistic, one row
#'   per replicate and one column per element of `t0`.
#' @method as.data.frame bootmm
#' @export
as.data.frame.bootmm <- function(x, row.names = NULL, optional = FALSE, ...) {
  out <- as.data.frame(x$t)
  names(out) <- if (is.null(names(x$t0))) paste0("t", seq_along(x$t0)) else names(x$t0)
  out
}
