//! The threads policy evaluation runs on, so a slow evaluation never stalls the async I/O
//! workers. Sized to the cores: more threads than cores would only share them, and each thread
//! keeps its own copy of the compiled engine. Callers queue without blocking a thread; the time
//! budget is regorus's, so it counts evaluation, not time spent in the queue.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Evaluations waiting for a thread before callers wait to queue theirs.
const QUEUE: usize = 4096;

pub struct EvalPool {
    jobs: flume::Sender<Job>,
}

impl EvalPool {
    /// Start `threads` evaluation threads (at least one). They stop when the pool is dropped.
    pub fn start(threads: usize) -> std::io::Result<EvalPool> {
        let (jobs, queue) = flume::bounded::<Job>(QUEUE);
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("clawgate-policy-{i}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        // A panicking job loses its own answer (its caller denies), not the thread.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(EvalPool { jobs })
    }

    /// One thread per core.
    pub fn per_core() -> std::io::Result<EvalPool> {
        EvalPool::start(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Run `f` on a pool thread; `None` when it panicked (or the pool is gone).
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send_async(job).await.ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_pool_threads_and_a_panic_does_not_take_a_thread() {
        let pool = EvalPool::start(1).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await;
        assert_eq!(name, Some(Some("clawgate-policy-0".to_string())));
        let panicked: Option<()> = pool.run(|| panic!("boom")).await;
        assert_eq!(panicked, None);
        // The one thread is still there.
        assert_eq!(pool.run(|| 7).await, Some(7));
    }
}
