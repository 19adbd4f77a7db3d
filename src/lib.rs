//! registry-janitor: keeps container registries small without breaking an image that is
//! still in use.
//!
//! The code reads like the job it does: a trigger names a scope, `registry` collects what
//! is there, the planner decides, apply carries the plan out, and a report tells what happened.

pub mod apply;
pub mod aws;
pub mod bounded;
pub mod collect;
pub mod in_use;
pub mod journal;
pub mod lambda;
pub mod pattern;
pub mod plan;
pub mod policy;
pub mod purge;
pub mod queue;
pub mod registry;
pub mod report;
pub mod restore;
pub mod state;
pub mod sweep;
pub mod trash;
pub mod trigger;
pub mod wiring;
