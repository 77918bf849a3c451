//! hookhost: an OCI hook host whose device and file injection policies are
//! WebAssembly components.
//!
//! The modules follow the data: the [`context`] of the container being
//! started and the [`config`] of the installed plugins go into the plugin
//! [`runtime`]; every request passes the one gate, [`requests`];
//! [`evaluate`] runs the active plugins and merges their requests into one
//! [`plan`]; [`lowering`] turns the plan into ordered, typed operations;
//! the [`backend`]s carry them out (the [`backend::hook`] executor, the
//! [`backend::shim`] that edits config.json) or show them
//! ([`backend::dry_run`]), and [`audit`] records what was done; [`install`]
//! writes what the engines need to run hookhost; [`trial`] runs a bundle
//! for real under the hook (`hookhost test --run`).
//! [`hostfs`] is the confined, read-only view of the host that plugins get,
//! through the [`allow`]-list; the executor opens the sources a plan names
//! in one module, [`backend::hook::sources`]; [`sys`] holds the one
//! `unsafe` system call wrapper.
#![deny(unsafe_code)]

pub mod allow;
pub mod audit;
pub mod backend;
pub mod cli;
pub mod config;
pub mod context;
pub mod deadline;
pub mod error;
pub mod evaluate;
pub mod front;
#[doc(hidden)]
pub mod fuzzing;
pub mod hostfs;
pub mod image;
pub mod input;
pub mod install;
pub mod limits;
pub mod lowering;
pub mod plan;
pub mod requests;
pub mod runtime;
pub mod static_policy;
pub mod sys;
pub mod trial;
