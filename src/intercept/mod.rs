//! Front doors: each turns its own protocol into an [`crate::action::Action`] and a
//! [`crate::gate::Decision`] back into its own protocol. None of them decides anything.

pub(crate) mod check_api;
pub mod egress;
pub(crate) mod forward;
pub mod mcp;
pub(crate) mod routes;
pub mod transparent;
