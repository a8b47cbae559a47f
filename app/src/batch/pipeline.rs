//! A batch as three stages: read + decode on loader threads ahead of the model, the model on
//! the calling thread, encode + write on a writer thread behind it. The queues between them
//! hold at most `prefetch` items, so memory stays bounded and the device never waits on I/O
//! unless I/O is the slower stage. `prefetch == 0` runs the three in turn on one thread (the
//! benchmark's baseline).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

use anyhow::Result;

use super::store::Created;

/// How one item ended.
#[derive(Debug)]
pub enum Outcome {
    /// Its outputs were written (or, if `Existed`, another attempt had written them first).
    Saved(Created),
    /// Skipped before any work, with the reason.
    Skipped(String),
}

/// The most loader (and writer) threads (more would only compete with the model for cores).
const MAX_LOADERS: usize = 4;

/// The stages of one batch. `load` returns `None` when the item turns out to be done already
/// (another attempt wrote it since the plan was made).
pub struct Stages<'a, T, L, O> {
    pub load: &'a (dyn Fn(&T) -> Result<Option<L>> + Sync),
    pub compute: &'a mut dyn FnMut(&T, L) -> Result<O>,
    pub save: &'a (dyn Fn(&T, O) -> Result<Created> + Sync),
    /// Called once per item, from whichever thread finished it.
    pub record: &'a (dyn Fn(&T, Result<Outcome>) + Sync),
}

impl<'a, T, L, O> Stages<'a, T, L, O> {
    pub fn new(
        load: &'a (dyn Fn(&T) -> Result<Option<L>> + Sync),
        compute: &'a mut dyn FnMut(&T, L) -> Result<O>,
        save: &'a (dyn Fn(&T, O) -> Result<Created> + Sync),
        record: &'a (dyn Fn(&T, Result<Outcome>) + Sync),
    ) -> Self {
        Stages {
            load,
            compute,
            save,
            record,
        }
    }
}

/// Runs every item of `items` through the stages, with `prefetch` items in flight per queue.
pub fn run<T: Sync, L: Send, O: Send>(items: &[T], prefetch: usize, s: Stages<'_, T, L, O>) {
    let Stages {
        load,
        compute,
        save,
        record,
    } = s;
    if prefetch == 0 {
        for item in items {
            let r = load(item).and_then(|l| match l {
                None => Ok(Outcome::Skipped(ALREADY_DONE.into())),
                Some(l) => Ok(Outcome::Saved(save(item, compute(item, l)?)?)),
            });
            record(item, r);
        }
        return;
    }
    let next = AtomicUsize::new(0);
    let (save_tx, save_rx) = sync_channel::<(usize, O)>(prefetch);
    let save_rx = Mutex::new(save_rx);
    std::thread::scope(|scope| {
        let (loaded_tx, loaded_rx) = sync_channel::<(usize, Result<Option<L>>)>(prefetch);
        for _ in 0..prefetch.min(MAX_LOADERS).min(items.len().max(1)) {
            let tx = loaded_tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() || tx.send((i, load(&items[i]))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(loaded_tx);
        for _ in 0..prefetch.min(MAX_LOADERS) {
            let rx = &save_rx;
            scope.spawn(move || writer(items, rx, save, record));
        }
        for (i, loaded) in loaded_rx {
            let item = &items[i];
            match loaded {
                Err(e) => record(item, Err(e)),
                Ok(None) => record(item, Ok(Outcome::Skipped(ALREADY_DONE.into()))),
                Ok(Some(l)) => match compute(item, l) {
                    Err(e) => record(item, Err(e)),
                    Ok(o) => {
                        if save_tx.send((i, o)).is_err() {
                            break;
                        }
                    }
                },
            }
        }
        drop(save_tx);
    });
}

/// Why an item planned for work was skipped at its turn.
const ALREADY_DONE: &str = clearpaint_core::batch::OUTPUT_EXISTS;

/// One of the writer threads: encoding a PNG costs as much as decoding a JPEG or more, so
/// several share the queue.
fn writer<T, O>(
    items: &[T],
    rx: &Mutex<Receiver<(usize, O)>>,
    save: &(dyn Fn(&T, O) -> Result<Created> + Sync),
    record: &(dyn Fn(&T, Result<Outcome>) + Sync),
) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((i, o)) = next else { break };
        record(&items[i], save(&items[i], o).map(Outcome::Saved));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every item reaches `record` exactly once, with its own stage results, whatever the
    /// queue depth; failures of each stage and "already done" are told apart.
    #[test]
    fn every_item_is_recorded_once_with_its_own_outcome() {
        let items: Vec<u32> = (0..40).collect();
        for prefetch in [0, 1, 3, 8] {
            let seen = Mutex::new(Vec::new());
            let load = |&i: &u32| -> Result<Option<u32>> {
                match i % 10 {
                    3 => anyhow::bail!("load {i}"),
                    4 => Ok(None),
                    _ => Ok(Some(i * 2)),
                }
            };
            let mut order = Vec::new();
            let mut compute = |&i: &u32, l: u32| -> Result<u32> {
                order.push(i);
                assert_eq!(l, i * 2);
                if i % 10 == 5 {
                    anyhow::bail!("compute {i}");
                }
                Ok(l + 1)
            };
            let save = |&i: &u32, o: u32| -> Result<Created> {
                assert_eq!(o, i * 2 + 1);
                match i % 10 {
                    6 => anyhow::bail!("save {i}"),
                    7 => Ok(Created::Existed),
                    _ => Ok(Created::Written),
                }
            };
            let record = |&i: &u32, r: Result<Outcome>| {
                let tag = match r {
                    Err(e) => e.to_string(),
                    Ok(Outcome::Skipped(_)) => "skipped".into(),
                    Ok(Outcome::Saved(c)) => format!("{c:?}"),
                };
                seen.lock().unwrap().push((i, tag));
            };
            run(
                &items,
                prefetch,
                Stages {
                    load: &load,
                    compute: &mut compute,
                    save: &save,
                    record: &record,
                },
            );
            let mut seen = seen.into_inner().unwrap();
            seen.sort();
            assert_eq!(seen.len(), items.len(), "prefetch {prefetch}");
            for (i, tag) in seen {
                let want = match i % 10 {
                    3 => format!("load {i}"),
                    4 => "skipped".into(),
                    5 => format!("compute {i}"),
                    6 => format!("save {i}"),
                    7 => "Existed".into(),
                    _ => "Written".into(),
                };
                assert_eq!(tag, want, "prefetch {prefetch} item {i}");
            }
            assert_eq!(order.len(), 32, "compute runs once per loaded item");
        }
    }
}
