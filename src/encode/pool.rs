//! One pool of encode threads, sized to the cores and shared by every session.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads running queued jobs in order.
pub struct Pool {
    tx: Mutex<mpsc::Sender<Job>>,
    threads: usize,
}

impl Pool {
    /// Start `threads` (at least one) worker threads. They end when the pool is dropped.
    pub fn new(threads: usize) -> std::io::Result<Pool> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("deskd-encode-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job must not take its thread with it: the pool would
                        // shrink until nothing encodes. Its result sender drops unsent, which
                        // its session sees as a failed encode.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                })?;
        }
        Ok(Pool {
            tx: Mutex::new(tx),
            threads,
        })
    }

    /// How many threads run jobs.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queue `job`.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        if let Ok(tx) = self.tx.lock() {
            // Fails only once every thread is gone, which only dropping the pool does.
            let _ = tx.send(Box::new(job));
        }
    }

    /// Run `f(0)`..`f(n - 1)`, spread over the calling thread and idle pool threads, and
    /// return when all are done. The caller works through the indices itself, so this never
    /// waits on a queued job: it finishes even when every pool thread is busy (or is the
    /// caller).
    pub fn for_each(&self, n: usize, f: Arc<dyn Fn(usize) + Send + Sync>) {
        if n == 0 {
            return;
        }
        let work = Arc::new(Indices {
            next: AtomicUsize::new(0),
            n,
            done: Mutex::new(0),
            all_done: Condvar::new(),
        });
        for _ in 0..self.threads.min(n - 1) {
            let (work, f) = (Arc::clone(&work), Arc::clone(&f));
            self.spawn(move || work.run(f.as_ref()));
        }
        work.run(f.as_ref());
        let mut done = work.done.lock().unwrap_or_else(|e| e.into_inner());
        while *done < n {
            done = work.all_done.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Indices handed out to whoever asks, and how many have finished.
struct Indices {
    next: AtomicUsize,
    n: usize,
    done: Mutex<usize>,
    all_done: Condvar,
}

impl Indices {
    fn run(&self, f: &(dyn Fn(usize) + Send + Sync)) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // A panicking job still counts as done, or the caller would wait forever.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i)));
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            *done += 1;
            if *done == self.n {
                self.all_done.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_each_runs_every_index_once_even_nested() {
        let pool = Arc::new(Pool::new(2).expect("threads"));
        let hits: Arc<Vec<AtomicUsize>> = Arc::new((0..50).map(|_| AtomicUsize::new(0)).collect());
        // Jobs on the pool that themselves fan out on the same pool: more callers than
        // threads, which must not deadlock.
        let (tx, rx) = mpsc::channel();
        for _ in 0..4 {
            let (pool2, hits, tx) = (Arc::clone(&pool), Arc::clone(&hits), tx.clone());
            pool.spawn(move || {
                let h = Arc::clone(&hits);
                pool2.for_each(
                    50,
                    Arc::new(move |i| {
                        h[i].fetch_add(1, Ordering::Relaxed);
                    }),
                );
                let _ = tx.send(());
            });
        }
        for _ in 0..4 {
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("every fan-out finishes");
        }
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 4));
    }

    #[test]
    fn a_panicking_job_keeps_its_thread() {
        let pool = Pool::new(1).expect("threads");
        let (tx, rx) = mpsc::channel();
        pool.spawn(|| panic!("an encoder bug"));
        pool.spawn(move || {
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the only thread still runs jobs");
    }
}
