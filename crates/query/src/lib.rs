//! Meshwork's query layer: a DataFusion session, per principal, over the published products.
//!
//! Products appear as tables `domain.product` in the catalog `meshwork`. The catalog is a
//! snapshot taken before planning (DataFusion's catalog API is synchronous): each table reads
//! the Delta version the metadata store names as current, never a newer uncommitted one.
//!
//! Governance is enforced here, the same way for every interface:
//! - a product the principal may not read is not registered at all, so it is missing from
//!   `SHOW TABLES` and `information_schema` and querying it says "not found";
//! - every scan of a restricted product is rewritten by [`rewrite::PolicyRule`], the first
//!   analyzer rule, into a fenced filter-and-mask subtree;
//! - statements are read-only: DDL, DML, COPY, SET, file/URL tables and file-reading table
//!   functions are refused while planning;
//! - EXPLAIN shows non-admins the fence, never what is behind it;
//! - every statement, refused or failed ones included, writes one audit event.

#![deny(missing_docs)]

mod access;
mod aggregate;
mod bounded;
mod consumers;
mod distributed;
mod domain;
mod engine;
mod error;
mod explain;
mod governance;
mod governed;
mod guard;
mod history;
mod limits;
mod literals;
mod masks;
mod placeholders;
mod privacy;
mod remote;
mod rewrite;
mod samples;
mod schema;
mod search;
mod session;
mod stream;
mod strings;
mod tuning;

pub use access::{
    AccessAnswer, AccessAsk, ProductCard, RevokeTarget, Visibility, access_requests, answer_request, card, grants, request_access, revoke, seen_product, shown_grants,
    visibility, withdraw_request,
};
pub use consumers::{Consumers, MajorReader, SubscribeRequest, consumers, subscribe, unsubscribe};
pub use distributed::{Cluster, MeshCodec, Placement};
pub use domain::{DomainReads, DomainSession};
pub use engine::{QueryEngine, QueryLimits, TableCache};
pub use error::{ErrorCode, QueryError};
pub use governance::{Governance, is_owner, visible_lineage};
pub use samples::{govern_samples, quality_runs_for};
pub use placeholders::Placeholders;
pub use privacy::PrivacySpent;
pub use remote::{RemoteAggregateRule, RemoteScanExec, RemoteTable, virtual_table};
pub use literals::{is_value_of, value_form};
pub use tuning::{BATCH_ROWS, tuned};
pub use limits::{MAX_NESTING, MAX_SQL_BYTES, check_length, check_nesting, on_planner_thread, recursion_refusal};
pub use search::{
    DEFAULT_LIMIT, FacetCount, FacetFilters, Facets, MatchedField, ProductHealth, ProductIndex, ProductState, QualityState, SearchHit, SearchRequest,
    SearchResults, SloState,
};
pub use session::{PreparedStatement, QuerySession, normalise, parameter_types};
pub use stream::QueryStream;

/// Name of the SQL catalog holding the products.
pub const CATALOG_NAME: &str = "meshwork";
