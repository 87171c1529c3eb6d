//! clawgate: a sidecar that puts Rego policy, human approval and audit evidence between an
//! OpenClaw agent and everything it can do. `docs/architecture.md` describes the flow, the
//! modules and which may import which.

pub mod action;
pub mod admin;
pub mod alloc;
pub mod app;
pub mod approvers;
pub mod audit;
pub mod config;
pub mod facts;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub(crate) mod http_api;
pub mod identity;
pub mod intercept;
pub(crate) mod listen;
pub(crate) mod metrics;
pub(crate) mod settings;
pub mod tls;
pub mod token;

// The API in one place: run a sidecar from a config, and the types its answers are made of.
// Modules only the sidecar itself uses are pub(crate).
pub use action::{Action, AgentIdentity, Requester};
pub use app::{Running, ServeError, run, start};
pub use config::Config;
pub use gate::{Decision, Gate, Mode, Outcome};
