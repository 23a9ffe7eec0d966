//! Thread counts as the R functions take them (`threads`: 0 for all cores, else a number of
//! threads), turned into parallelism in one place:
//!
//! * [`pool`]: a rayon pool for work made of independent pieces (the profiles of several
//!   parameters, bootstrap replicates); each piece runs with sequential linear algebra, so a
//!   result does not depend on which thread computes it or on how many there are;
//! * [`par`]: faer's parallelism for the linear algebra of one model (the factorization, the
//!   trailing Schur update, the conditional variances), run on rayon's global pool, which is
//!   never resized, so nothing leaks from one call to the next.
use crate::error::{MixedError, Result};
use faer::Par;

/// A rayon pool of `threads` threads (0: one per core, rayon's default).
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| MixedError::InvalidInput(format!("could not start threads: {e}")))
}

/// The linear algebra's parallelism for `threads` threads: 0 uses every thread of rayon's
/// global pool, 1 runs sequentially, `k` splits the parallel kernels `k` ways.
pub fn par(threads: usize) -> Par {
    match threads {
        1 => Par::Seq,
        k => Par::rayon(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts() {
        assert_eq!(par(1), Par::Seq);
        assert_eq!(par(3), Par::rayon(3));
        assert_eq!(par(0), Par::rayon(0));
        assert_eq!(pool(2).expect("pool").current_num_threads(), 2);
    }
}
