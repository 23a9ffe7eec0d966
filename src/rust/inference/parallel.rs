//! Thread counts as the R functions take them (`threads`: 0 for all cores, else a number of
//! threads), turned into parallelism in one place:
//!
//! * [`pool`]: a rayon pool for work made of independent pieces (the profiles of several
//!   parameters, bootstrap replicates); each piece runs with sequential linear algebra, so a
//!   result does not depend on which thread computes it or on how many there are;
//! * [`par`]: faer's parallelism for the linear algebra of one model (the factorization, the
//!   trailing Schur update, the conditional variances), run on rayon's global pool, which is
//!   never resized, so nothing leaks from one call to the next;
//! * [`run_concurrently`]: a few long jobs (the searches of one fit from several starts), each
//!   on a thread of its own while the calling thread watches for a stop request (R's Ctrl-C
//!   can only be polled from R's thread).
use crate::error::{MixedError, Result};
use crate::optim::Stop;
use faer::Par;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// What a watched run ([`watch`]) shares with the thread that watches it: a flag the work
/// checks between its pieces (raised: give up), and the number of pieces done so far (for a
/// progress line).
#[derive(Debug, Default)]
pub struct Watched {
    stop: AtomicBool,
    done: AtomicUsize,
}

impl Watched {
    /// Whether the work should give up.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Counts one more piece done.
    pub fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The pieces done so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// What an optimizer's progress callback answers in a watched run: stop once the flag is
    /// raised.
    pub fn as_stop(&self) -> Stop {
        if self.stopped() {
            Stop::Interrupt
        } else {
            Stop::Continue
        }
    }
}

/// Runs `work` on a scoped thread of its own while the calling thread calls
/// `poll(state, elapsed)` every [`STOP_POLL`] (where it may report progress) and raises the
/// stop flag of `state` once `poll` answers true. Returns the work's result and whether a stop
/// was requested. Long inference runs (profiles, bootstrap refits on a rayon pool,
/// Kenward-Roger's dense steps) use it so that R's Ctrl-C, which only R's thread can poll,
/// reaches them.
pub fn watch<T: Send>(
    state: &Watched,
    work: impl FnOnce() -> T + Send,
    mut poll: impl FnMut(&Watched, std::time::Duration) -> bool,
) -> (T, bool) {
    let started = std::time::Instant::now();
    let mut requested = false;
    let (done, finished) = std::sync::mpsc::channel();
    let out = std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            let _signal = DoneSignal(done);
            work()
        });
        let mut ended = 0;
        while !wait_for_jobs(&finished, &mut ended, 1) {
            if poll(state, started.elapsed()) && !requested {
                requested = true;
                state.stop.store(true, Ordering::Relaxed);
            }
        }
        handle.join()
    });
    match out {
        Ok(value) => (value, requested),
        // The work's panic, raised again on the calling thread (where the R boundary catches it).
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// How often [`run_concurrently`] and [`watch`] ask whether to stop while their work runs.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Sent on its channel when dropped: a job's thread holds one, so that the thread waiting for
/// it wakes as soon as the job ends (also by a panic) instead of at its next poll.
struct DoneSignal(std::sync::mpsc::Sender<()>);

impl Drop for DoneSignal {
    fn drop(&mut self) {
        // The receiver outlives the jobs (it is dropped after their scope); ignore a closed one.
        let _ = self.0.send(());
    }
}

/// Waits up to [`STOP_POLL`] for jobs to end, counting in `ended` the signals that arrive on
/// `finished`; true once all `jobs` have ended.
fn wait_for_jobs(finished: &std::sync::mpsc::Receiver<()>, ended: &mut usize, jobs: usize) -> bool {
    use std::sync::mpsc::RecvTimeoutError;
    if *ended >= jobs {
        return true;
    }
    match finished.recv_timeout(STOP_POLL) {
        Ok(()) => {
            *ended += 1;
            while finished.try_recv().is_ok() {
                *ended += 1;
            }
            *ended >= jobs
        }
        Err(RecvTimeoutError::Timeout) => false,
        // Every job's sender is gone: every job has ended.
        Err(RecvTimeoutError::Disconnected) => true,
    }
}

/// Runs `jobs` at once, each on a scoped thread of its own (the operating system shares the
/// cores among them), and returns their results in order. The jobs share one [`Watched`]
/// state whose stop flag they should check now and then; while they run the calling thread
/// calls `stop_requested` every [`STOP_POLL`] and raises the flag once it answers true. A job
/// that panics gives an error instead of its result.
pub fn run_concurrently<T, F>(
    jobs: Vec<F>,
    mut stop_requested: impl FnMut() -> bool,
) -> Vec<Result<T>>
where
    T: Send,
    F: FnOnce(&Watched) -> Result<T> + Send,
{
    let state = Watched::default();
    let n_jobs = jobs.len();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let state = &state;
                let done = done.clone();
                scope.spawn(move || {
                    let _signal = DoneSignal(done);
                    job(state)
                })
            })
            .collect();
        drop(done);
        let mut ended = 0;
        while !wait_for_jobs(&finished, &mut ended, n_jobs) {
            if !state.stopped() && stop_requested() {
                state.stop.store(true, Ordering::Relaxed);
            }
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(MixedError::Optimizer(
                        "internal: a concurrent fit panicked".into(),
                    ))
                })
            })
            .collect()
    })
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

    #[test]
    fn concurrent_jobs_keep_their_order_and_stop_when_asked() {
        let jobs: Vec<_> = (0..3)
            .map(|k| {
                move |state: &Watched| -> Result<usize> {
                    if k == 1 {
                        while !state.stopped() {
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        return Err(MixedError::Optimizer("stopped".into()));
                    }
                    Ok(10 * k)
                }
            })
            .collect();
        let mut polls = 0;
        let out = run_concurrently(jobs, || {
            polls += 1;
            polls > 3
        });
        assert!(matches!(out[0], Ok(0)));
        assert!(out[1].is_err());
        assert!(matches!(out[2], Ok(20)));
    }

    #[test]
    fn watched_work_sees_the_stop_request() {
        let state = Watched::default();
        let mut polls = 0;
        let (steps, requested) = watch(
            &state,
            || {
                while !state.stopped() {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    state.tick();
                }
                state.done()
            },
            |_, _| {
                polls += 1;
                polls > 2
            },
        );
        assert!(requested && steps > 0);
        let (value, requested) = watch(&Watched::default(), || 7, |_, _| false);
        assert_eq!((value, requested), (7, false));
    }
}
