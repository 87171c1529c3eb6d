//! The integration tests: one binary (one link, one process start-up per `cargo test`), one
//! module per area, and the shared scaffolding in `common/`. Each test starts real peers on
//! loopback (a sidecar, MCP servers, OpenClaw, curl) and talks to them over their interfaces.

mod common;

mod approvals;
mod audit;
mod audit_python_verify;
mod check_api;
mod cli;
mod constraints;
mod docs;
mod egress;
mod fuzz;
mod identities;
mod listeners;
mod mcp_gateway;
mod notify;
mod openclaw_e2e;
mod operations;
mod plugin;
mod policy_reload;
mod redteam;
mod tls;
mod transparent;
