//! Access requests and grants as the catalog keeps them: a principal asks an owning domain for
//! access to a product, an owner approves (a grant) or denies, and a grant ends by revocation or
//! at its end date.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use meshwork_core::id::ProductId;
use meshwork_core::keyword_enum;

/// The number of an access request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AccessRequestId(pub i64);

/// The number of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct GrantId(pub i64);

macro_rules! number_id {
    ($name:ident, $what:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                text.trim().parse::<i64>().ok().filter(|n| *n > 0).map($name).ok_or_else(|| format!("`{text}` is not {}: expected a positive number", $what))
            }
        }
    };
}

number_id!(AccessRequestId, "an access request id");
number_id!(GrantId, "a grant id");

keyword_enum! {
    /// Where an access request stands.
    pub enum AccessRequestStatus ("access request status") {
        /// Waiting for an owner.
        Pending => "pending",
        /// An owner approved it; a grant was made.
        Approved => "approved",
        /// An owner denied it.
        Denied => "denied",
        /// The requester took it back.
        Withdrawn => "withdrawn",
    }
}

/// What a principal asks for: read access to one product, for a purpose, possibly until a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessRequest {
    /// The product.
    pub product: ProductId,
    /// The requester (a principal name, `user:ana`).
    pub principal: String,
    /// Why; never empty.
    pub purpose: String,
    /// When the access should end; `None` asks for no end.
    pub until: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// An access request as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessRequest {
    /// Its number.
    pub id: AccessRequestId,
    /// The product.
    pub product: ProductId,
    /// The requester.
    pub principal: String,
    /// Why.
    pub purpose: String,
    /// When the access should end.
    #[serde(with = "crate::time::rfc3339_option")]
    pub until: Option<DateTime<Utc>>,
    /// Where it stands.
    pub status: AccessRequestStatus,
    /// When it was made.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it was approved, denied or withdrawn.
    #[serde(with = "crate::time::rfc3339_option")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Who approved, denied or withdrew it.
    pub decided_by: Option<String>,
    /// The owner's comment.
    pub comment: Option<String>,
}

/// An owner's answer to a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecisionRecord {
    /// Approve (a grant is made) or deny.
    pub approve: bool,
    /// The owner or administrator deciding.
    pub by: String,
    /// Their comment.
    pub comment: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Read access given to one principal on one product by an approved request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Grant {
    /// Its number.
    pub id: GrantId,
    /// The product.
    pub product: ProductId,
    /// Who reads by it (the requester).
    pub principal: String,
    /// The request it answers.
    pub request: Option<AccessRequestId>,
    /// Who approved it.
    pub granted_by: String,
    /// The request's purpose.
    pub purpose: String,
    /// When it was made.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it ends by itself; `None` for no end.
    #[serde(with = "crate::time::rfc3339_option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[serde(with = "crate::time::rfc3339_option")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

impl Grant {
    /// Whether it makes its principal a reader at `now`: not revoked and not past its end.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| now < end)
    }
}

/// Which access requests to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRequestFilter {
    /// Of this product only.
    pub product: Option<ProductId>,
    /// In this state only.
    pub status: Option<AccessRequestStatus>,
    /// Made by this principal only.
    pub principal: Option<String>,
}
