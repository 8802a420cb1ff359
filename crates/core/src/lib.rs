//! Meshwork's model: identifiers, descriptors, contracts and the mesh graph.
//!
//! This crate does no IO: it turns text into typed descriptors, checks them, and answers
//! questions about the mesh graph. Reading files, storing tables and running SQL live in the
//! crates above it, so everything here is fast to test and cannot fail for reasons outside
//! the user's input.

#![deny(missing_docs)]

pub mod aggregate;
pub mod clock;
pub mod column_type;
pub mod contract_diff;
pub mod descriptor;
pub mod diagnostic;
pub mod event;
pub mod id;
pub mod keyword;
pub mod lifecycle;
pub mod lineage;
pub mod mesh;
pub mod openlineage;
pub mod parse;
pub mod principal;
pub mod standards;
mod yaml;

pub use yaml::Positions;
