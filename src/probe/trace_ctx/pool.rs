//! Worker threads for the sequences that move work between threads.

use std::sync::mpsc;

use anyhow::{Result, anyhow};

use super::Tracer;
use crate::context::thread_id;

type Job<'env> = Box<dyn FnOnce() + Send + 'env>;

/// A fixed pool of OS threads; [`Pool::run`] runs one closure on one chosen worker and waits.
pub struct Pool<'env> {
    senders: Vec<mpsc::Sender<Job<'env>>>,
    pub tids: Vec<u64>,
}

impl<'env> Pool<'env> {
    pub fn spawn<'scope>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        tracer: &'env Tracer<'env>,
        names: Vec<String>,
    ) -> Pool<'env> {
        let (tid_tx, tid_rx) = mpsc::channel();
        let mut senders = Vec::new();
        let n = names.len();
        for (w, name) in names.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Job<'env>>();
            let tid_tx = tid_tx.clone();
            s.spawn(move || {
                tracer.name_thread(name);
                let _ = tid_tx.send((w, thread_id()));
                for job in rx {
                    job();
                }
            });
            senders.push(tx);
        }
        let mut tids = vec![0; n];
        for _ in 0..n {
            if let Ok((w, tid)) = tid_rx.recv() {
                tids[w] = tid;
            }
        }
        Pool { senders, tids }
    }

    pub fn run<R: Send + 'env>(&self, w: usize, f: impl FnOnce() -> R + Send + 'env) -> Result<R> {
        let (tx, rx) = mpsc::channel();
        self.senders[w]
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| anyhow!("worker {w} is gone"))?;
        rx.recv()
            .map_err(|_| anyhow!("worker {w} died while running a task"))
    }
}
