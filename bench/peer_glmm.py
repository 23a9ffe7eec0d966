"""Second reference for `make bench`: the `glmm` crate's Python package (pure Rust on faer).

Reads the manifest written by bench/bench.R (one row per model: name, CSV file, formula, family,
factor columns, repetitions) and prints, per model, the median fit time in seconds and the
log-likelihood, as CSV on standard output. Only `glmm.fit` is timed (the data are already
NumPy arrays), with Satterthwaite df off, as mixedrs computes none at fit time.
"""

import csv
import statistics
import sys
import time

import glmm
import numpy as np


def load(path, factors):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    data = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        data[key] = np.array(values) if key in factors else np.array(values, dtype=float)
    return data


def main(manifest):
    out = csv.writer(sys.stdout)
    out.writerow(["name", "seconds", "loglik"])
    with open(manifest, newline="") as f:
        models = list(csv.DictReader(f))
    for m in models:
        factors = set(filter(None, m["factors"].split(";")))
        data = load(m["file"], factors)
        times = []
        fit = None
        for _ in range(int(m["reps"])):
            t0 = time.perf_counter()
            fit = glmm.fit(data, m["formula"], m["family"], satterthwaite=False)
            times.append(time.perf_counter() - t0)
        out.writerow([m["name"], statistics.median(times), fit.loglik])
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
