//! Bundle reloads: what asks for one, what came of it, and the policy directory watcher.
//! [`crate::gate::Gate::reload_policy`] does the reload itself.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// What asked for a reload; logged with the outcome.
#[derive(Debug, Clone, Copy)]
pub enum ReloadTrigger {
    FileChange,
    Signal,
    Admin,
}

impl ReloadTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadTrigger::FileChange => "file_change",
            ReloadTrigger::Signal => "sighup",
            ReloadTrigger::Admin => "admin",
        }
    }
}

/// Outcome of one reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Swapped { revision: String },
    Unchanged,
    Rejected { error: String, serving: String },
}

impl ReloadOutcome {
    /// `reloaded`, `unchanged` or `rejected` (the `policy_loads` metric's outcome).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReloadOutcome::Swapped { .. } => "reloaded",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Rejected { .. } => "rejected",
        }
    }
}

/// Watches a policy directory and runs `on_change` after changes settle.
/// Dropping the returned watcher stops watching.
pub fn watch_dir<F, Fut>(
    dir: &Path,
    settle: Duration,
    on_change: F,
) -> notify::Result<notify::RecommendedWatcher>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(ev) = event
            && !ev.kind.is_access()
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Editors write files in several steps; wait until the burst is over.
            loop {
                match tokio::time::timeout(settle, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            // Awaited: one reload at a time, each reading the files as they are by then.
            on_change().await;
        }
    });
    Ok(watcher)
}
