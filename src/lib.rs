//! clawgate: a sidecar that puts Rego policy, human approval and audit evidence between an
//! OpenClaw agent and everything it can do. `docs/architecture.md` describes the flow, the
//! modules and which may import which.

pub mod action;
pub mod admin;
pub mod app;
pub mod approvers;
pub mod audit;
pub mod config;
pub mod facts;
pub mod gate;
pub mod http_api;
pub mod identity;
pub mod intercept;
pub mod listen;
pub mod metrics;
pub mod tls;
pub mod token;
