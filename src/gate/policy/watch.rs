//! Bundle reloads: on file changes in the policy directory and on SIGHUP.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::PolicyEngine;

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

/// Reload the bundle and log the outcome. A rejected bundle leaves the old one serving.
pub fn reload(engine: &PolicyEngine, trigger: ReloadTrigger) -> ReloadOutcome {
    match engine.reload() {
        Ok(Some(revision)) => {
            tracing::info!(trigger = trigger.as_str(), %revision, "policy bundle reloaded");
            ReloadOutcome::Swapped { revision }
        }
        Ok(None) => {
            tracing::debug!(trigger = trigger.as_str(), "policy bundle unchanged");
            ReloadOutcome::Unchanged
        }
        Err(e) => {
            let serving = engine.revision();
            tracing::error!(
                trigger = trigger.as_str(),
                error = %e,
                serving = %serving,
                "policy bundle rejected; the previous bundle keeps serving"
            );
            ReloadOutcome::Rejected {
                error: e.to_string(),
                serving,
            }
        }
    }
}

/// Watches a policy directory and reloads after changes settle.
/// Dropping the returned watcher stops watching.
pub fn watch_dir(
    engine: Arc<PolicyEngine>,
    dir: &Path,
    settle: Duration,
    on_reload: impl Fn(ReloadTrigger, ReloadOutcome) + Send + 'static,
) -> notify::Result<notify::RecommendedWatcher> {
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
            let engine = engine.clone();
            let outcome =
                tokio::task::spawn_blocking(move || reload(&engine, ReloadTrigger::FileChange))
                    .await;
            if let Ok(outcome) = outcome {
                on_reload(ReloadTrigger::FileChange, outcome);
            }
        }
    });
    Ok(watcher)
}
