//! Human approval: `require_approval` verdicts become approval requests bound to the exact
//! action, held until enough allowed people answer, and released exactly to that action.

pub mod model;
pub mod notify;
pub mod signature;

pub use model::{
    Answer, ApprovalBinding, ApprovalRequest, ApprovalStatus, ApprovalView, Channel, Vote,
};
pub use notify::Notifier;
