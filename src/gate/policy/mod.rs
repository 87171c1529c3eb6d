//! Rego policy evaluation with regorus.
//!
//! A bundle is compiled once; each worker thread clones the prepared engine once per bundle
//! revision and reuses it, so no request parses or prepares policy. Reloads swap the bundle
//! atomically; a bundle that does not compile never replaces the one serving.

pub mod bundle;
pub mod cache;
pub mod pool;
mod settings;
pub mod testing;
pub mod watch;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

pub use bundle::{Bundle, BundleFiles, BundleSource, ENTRYPOINT};
pub use settings::PolicyConfig;

use crate::facts::{Facts, FactsContext};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot load policy bundle: {0}")]
    Load(String),
    #[error("policy bundle does not compile: {0}")]
    Compile(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
    RequireApproval,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::RequireApproval => "require_approval",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// Who must approve, how many, and for how long the request waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default = "one")]
    pub quorum: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub key: String,
    pub per_minute: u32,
}

/// Limits the policy puts on an allowed action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
    /// Actions of one agent (its authenticated identity, else its id) running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<crate::gate::constraints::TimeWindow>,
}

/// The policy's answer for one input: `data.clawgate.decision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub effect: Effect,
    pub risk: Risk,
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Constraints>,
}

/// Why evaluation produced no usable verdict. Each one denies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalFailure {
    #[error("policy returned no decision (data.clawgate.decision is undefined for this input)")]
    Undefined,
    #[error("policy evaluation exceeded its time budget of {0} ms")]
    Timeout(u64),
    #[error("policy evaluation failed: {0}")]
    Error(String),
    #[error("policy returned a malformed decision: {0}")]
    Malformed(String),
}

/// The serving bundle plus everything needed to evaluate it.
pub struct PolicyEngine {
    current: ArcSwap<Bundle>,
    budget: Duration,
    cache: Option<cache::DecisionCache>,
    /// Where [`PolicyEngine::decide_action`] evaluates; without one it evaluates on the
    /// caller's thread.
    pool: Option<pool::EvalPool>,
}

thread_local! {
    /// This worker's engine for the bundle generation it last evaluated.
    static WORKER_ENGINE: RefCell<Option<(u64, regorus::Engine)>> = const { RefCell::new(None) };
}

impl PolicyEngine {
    pub fn new(bundle: Bundle, budget: Duration) -> PolicyEngine {
        PolicyEngine {
            current: ArcSwap::from_pointee(bundle),
            budget,
            cache: None,
            pool: None,
        }
    }

    /// Evaluate on these threads (see [`PolicyEngine::decide_action`]).
    pub fn with_pool(mut self, pool: pool::EvalPool) -> PolicyEngine {
        self.pool = Some(pool);
        self
    }

    /// Remember up to `entries` verdicts (0 turns the cache off).
    pub fn with_decision_cache(mut self, entries: usize) -> PolicyEngine {
        self.cache = (entries > 0).then(|| cache::DecisionCache::new(entries));
        self
    }

    /// Load and compile from a directory, or the embedded bundle.
    pub fn load(
        dir: Option<&std::path::Path>,
        budget: Duration,
    ) -> Result<PolicyEngine, PolicyError> {
        let bundle = Bundle::compile(&BundleFiles::from_option(dir)?, budget)?;
        Ok(PolicyEngine::new(bundle, budget))
    }

    pub fn bundle(&self) -> Arc<Bundle> {
        self.current.load_full()
    }

    pub fn revision(&self) -> String {
        self.current.load().revision.clone()
    }

    /// Re-read the bundle from where it came from and compile it, without serving it yet
    /// (see [`PolicyEngine::install`]). `None` when it is the serving revision.
    pub fn prepare_reload(&self) -> Result<Option<Bundle>, PolicyError> {
        let source = self.current.load().source.clone();
        let files = match &source {
            BundleSource::Embedded => BundleFiles::embedded(),
            BundleSource::Dir(d) => BundleFiles::read_dir(d)?,
        };
        if files.revision() == self.current.load().revision {
            return Ok(None);
        }
        Ok(Some(Bundle::compile(&files, self.budget)?))
    }

    /// Serve `bundle` from now on.
    pub fn install(&self, bundle: Bundle) {
        self.current.store(Arc::new(bundle));
    }

    /// Evaluate the entrypoint for one input document. Returns the verdict and the revision
    /// of the bundle that produced it (or failed to).
    pub fn evaluate(&self, input: &serde_json::Value) -> (Result<Verdict, EvalFailure>, String) {
        let bundle = self.current.load_full();
        let result = self.evaluate_with(&bundle, input);
        (result, bundle.revision.clone())
    }

    /// The facts of an action as the serving bundle states them (its parameter roles).
    pub fn facts(&self, action: &crate::action::Action, ctx: &FactsContext) -> Facts {
        crate::facts::facts_for(action, &self.current.load().param_roles, ctx)
    }

    /// [`PolicyEngine::facts`] on the evaluation threads when the engine has them: stating
    /// facts can wait on a shell parser worker, which an async worker must not.
    pub async fn facts_off_thread(
        &self,
        action: &crate::action::Action,
        ctx: &FactsContext,
    ) -> Facts {
        let Some(pool) = &self.pool else {
            return self.facts(action, ctx);
        };
        let (bundle, action, ctx) = (self.current.load_full(), action.clone(), ctx.clone());
        pool.run(move || crate::facts::facts_for(&action, &bundle.param_roles, &ctx))
            .await
            // The thread stopped: say the facts are not everything, rather than nothing.
            .unwrap_or_else(|| Facts {
                truncated: true,
                ..Facts::default()
            })
    }

    /// Decide an action: through the decision cache, else by stating its facts (with the
    /// serving bundle's parameter roles) into `input.facts` and evaluating, on this thread.
    /// `input` is the policy input without facts, with or without `action` (added from
    /// `action` when absent); `action_hash` the canonical hash of `action`.
    pub fn evaluate_action(
        &self,
        input: serde_json::Value,
        action: &crate::action::Action,
        ctx: &FactsContext,
        action_hash: &str,
    ) -> (Result<Verdict, EvalFailure>, String) {
        let (bundle, key) = match self.cached(&input, ctx, action_hash) {
            Lookup::Hit(verdict, revision) => return (Ok(*verdict), revision),
            Lookup::Miss(bundle, key) => (bundle, key),
        };
        let result = judge(&bundle, self.budget, input, action, ctx);
        self.remember(key, &result);
        (result, bundle.revision.clone())
    }

    /// As [`PolicyEngine::evaluate_action`], with the facts and the evaluation on the
    /// evaluation threads when the engine has them: the caller's async worker only looks up
    /// the cache and waits.
    pub async fn decide_action(
        &self,
        input: serde_json::Value,
        action: &crate::action::Action,
        ctx: &FactsContext,
        action_hash: &str,
    ) -> (Result<Verdict, EvalFailure>, String) {
        let Some(pool) = &self.pool else {
            return self.evaluate_action(input, action, ctx, action_hash);
        };
        let (bundle, key) = match self.cached(&input, ctx, action_hash) {
            Lookup::Hit(verdict, revision) => return (Ok(*verdict), revision),
            Lookup::Miss(bundle, key) => (bundle, key),
        };
        let job = (bundle.clone(), action.clone(), ctx.clone(), self.budget);
        let result = pool
            .run(move || {
                let (bundle, action, ctx, budget) = job;
                judge(&bundle, budget, input, &action, &ctx)
            })
            .await
            .unwrap_or_else(|| {
                Err(EvalFailure::Error(
                    "the evaluation stopped on its thread (a panic in the policy engine)".into(),
                ))
            });
        self.remember(key, &result);
        (result, bundle.revision.clone())
    }

    /// The cached verdict for this input, or the serving bundle and the key to remember the
    /// verdict under.
    fn cached(&self, input: &serde_json::Value, ctx: &FactsContext, action_hash: &str) -> Lookup {
        let bundle = self.current.load_full();
        // Facts are a function of the action, the bundle and the context's home: the cache
        // key holds the action hash, the bundle generation and the home, not the facts.
        let facts_key = format!("{}\0{}", ctx.home, ctx.workspace);
        let key = match (&self.cache, &bundle.projection) {
            (Some(_), Some(p)) => p.key(bundle.generation, action_hash, &facts_key, input),
            _ => None,
        };
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(verdict) = cache.get(key)
        {
            return Lookup::Hit(Box::new(verdict), bundle.revision.clone());
        }
        Lookup::Miss(bundle, key)
    }

    fn remember(&self, key: Option<Vec<u8>>, result: &Result<Verdict, EvalFailure>) {
        if let (Some(cache), Some(key), Ok(verdict)) = (&self.cache, key, result) {
            cache.insert(key, verdict.clone());
        }
    }

    fn evaluate_with(
        &self,
        bundle: &Bundle,
        input: &serde_json::Value,
    ) -> Result<Verdict, EvalFailure> {
        evaluate_on(bundle, self.budget, input)
    }
}

enum Lookup {
    Hit(Box<Verdict>, String),
    Miss(Arc<Bundle>, Option<Vec<u8>>),
}

/// State the action (unless `input` has it) and its facts into `input` and evaluate the bundle
/// on it.
fn judge(
    bundle: &Bundle,
    budget: Duration,
    mut input: serde_json::Value,
    action: &crate::action::Action,
    ctx: &FactsContext,
) -> Result<Verdict, EvalFailure> {
    let facts = crate::facts::facts_for(action, &bundle.param_roles, ctx);
    if let serde_json::Value::Object(map) = &mut input {
        if !map.contains_key("action") {
            map.insert(
                "action".into(),
                serde_json::to_value(action).unwrap_or(serde_json::Value::Null),
            );
        }
        map.insert(
            "facts".into(),
            serde_json::to_value(&facts).unwrap_or(serde_json::Value::Null),
        );
    }
    evaluate_on(bundle, budget, &input)
}

/// Evaluate the entrypoint on this thread's engine for the bundle's generation.
fn evaluate_on(
    bundle: &Bundle,
    budget: Duration,
    input: &serde_json::Value,
) -> Result<Verdict, EvalFailure> {
    let input = <regorus::Value as Deserialize>::deserialize(input)
        .map_err(|e| EvalFailure::Error(format!("input is not representable: {e}")))?;
    let value = WORKER_ENGINE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let stale = !matches!(&*slot, Some((g, _)) if *g == bundle.generation);
        if stale {
            let template = bundle
                .template
                .lock()
                .map_err(|_| EvalFailure::Error("policy engine lock poisoned".into()))?;
            *slot = Some((bundle.generation, template.clone()));
        }
        let Some((_, engine)) = slot.as_mut() else {
            return Err(EvalFailure::Error("no engine".into()));
        };
        engine.set_input(input);
        engine
            .eval_rule(ENTRYPOINT.to_string())
            .map_err(|e| classify(e, budget))
    })?;
    verdict_from_value(&value)
}

/// A time-limit error is the budget's timeout; anything else an evaluation error.
fn classify(err: anyhow::Error, budget: Duration) -> EvalFailure {
    let timed_out = err.chain().any(|c| {
        matches!(
            c.downcast_ref(),
            Some(regorus::LimitError::TimeLimitExceeded { .. })
        )
    }) || format!("{err:#}").contains("exceeded time limit");
    if timed_out {
        EvalFailure::Timeout(budget.as_millis() as u64)
    } else {
        EvalFailure::Error(format!("{err:#}"))
    }
}

/// Turn the Rego value into a typed verdict, rejecting anything off-contract.
pub fn verdict_from_value(value: &regorus::Value) -> Result<Verdict, EvalFailure> {
    if *value == regorus::Value::Undefined {
        return Err(EvalFailure::Undefined);
    }
    let json = serde_json::to_value(value).map_err(|e| EvalFailure::Malformed(e.to_string()))?;
    Verdict::deserialize(json).map_err(|e| EvalFailure::Malformed(e.to_string()))
}
