//! clawgate: a sidecar that puts Rego policy, human approval and audit evidence between an
//! OpenClaw agent and everything it can do. See ARCHITECTURE.md for the data flow.

pub mod action;
pub mod admin;
pub mod audit;
pub mod config;
pub mod facts;
pub mod gate;
pub mod http_api;
pub mod identity;
pub mod intercept;
pub mod metrics;
pub mod server;
pub mod tls;
pub mod token;
