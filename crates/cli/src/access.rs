//! `meshwork access …`: ask a product's owners for access, list and decide requests, list and
//! revoke grants. The rules live in `meshwork_query`'s access module, shared with the HTTP API.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use meshwork_catalog::{AccessRequest, AccessRequestFilter, AccessRequestId, AccessRequestStatus, Grant, GrantId};
use meshwork_core::id::ProductId;
use meshwork_query::{AccessAnswer, AccessAsk, RevokeTarget};

use crate::ReportFormat;
use crate::commands::open_as;
use crate::output::text_table;

const INTERFACE: &str = "cli";

/// `meshwork access` subcommands.
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Access requests you may see: yours, and those for products you own (administrators:
    /// all), oldest first.
    List {
        /// Only requests for this product (`domain.product`).
        #[arg(long)]
        product: Option<String>,
        /// Only requests in this state: pending, approved, denied, withdrawn.
        #[arg(long)]
        status: Option<AccessRequestStatus>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Ask the owners of a product you cannot read (but whose card you see) for read access.
    Request {
        /// The product, as `domain.product`.
        product: String,
        /// What the data is for (required).
        #[arg(long)]
        purpose: String,
        /// When the access should end: an RFC 3339 time, a date (access ends when that UTC day
        /// ends), or a duration from now (`90d`, `12h`).
        #[arg(long, value_parser = parse_until)]
        until: Option<DateTime<Utc>>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Approve a pending request (owners of the product and administrators): the requester
    /// reads the product at once, on every interface, until the request's end.
    Approve {
        /// The request's number (`meshwork access list --status pending`).
        id: AccessRequestId,
        /// A note for the requester.
        #[arg(long)]
        comment: Option<String>,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Deny a pending request, saying why (owners of the product and administrators).
    Deny {
        /// The request's number.
        id: AccessRequestId,
        /// Why (required).
        #[arg(long)]
        comment: String,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Withdraw your own pending request.
    Withdraw {
        /// The request's number.
        id: AccessRequestId,
    },
    /// End grants at once: one grant by number, or every grant of a principal on a product
    /// (`meshwork access revoke sales.orders user:ana`). Owners of the product, administrators
    /// and the grantee itself.
    Revoke {
        /// A grant's number, or a product (`domain.product`) followed by the grantee.
        target: String,
        /// The grantee, when `target` is a product. (Not called `principal`: clap would merge
        /// it with the global `--as`.)
        #[arg(value_name = "PRINCIPAL")]
        grantee: Option<String>,
    },
    /// Grants you may see: all grants of products you own, and your own.
    Grants {
        /// Only grants of this product (`domain.product`).
        #[arg(long)]
        product: Option<String>,
        /// Revoked and expired grants too.
        #[arg(long)]
        all: bool,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

/// When access should end, as `--until` takes it.
fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = meshwork_catalog::time::parse(text) {
        return Ok(at);
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let next = day.succ_opt().ok_or_else(|| format!("`{text}` is too far in the future"))?;
        return Ok(next.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    match meshwork_core::parse::parse_duration(text) {
        Ok(d) => Ok(Utc::now() + chrono::Duration::seconds(d.seconds as i64)),
        Err(_) => Err(format!("`{text}` is not a time: write `2027-01-31`, `2027-01-31T18:00:00Z` or a duration from now like `90d`")),
    }
}

/// Runs one `meshwork access` command as `principal`.
pub async fn run(dir: &Path, principal: Option<&str>, command: AccessCommand) -> anyhow::Result<()> {
    let (catalog, governance, principal) = open_as(dir, principal).await?;
    let catalog = catalog.as_ref();
    match command {
        AccessCommand::List { product, status, format } => {
            let product = match product.as_deref() {
                Some(name) => Some(name.parse::<ProductId>().map_err(|e| anyhow::anyhow!("`--product {name}`: {e}"))?),
                None => None,
            };
            let requests = meshwork_query::access_requests(catalog, &principal, &AccessRequestFilter { product, status, principal: None }).await?;
            match format {
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&requests)?),
                ReportFormat::Text if requests.is_empty() => println!("no access requests"),
                ReportFormat::Text => print!("{}", request_table(&requests)),
            }
        }
        AccessCommand::Request { product, purpose, until, format } => {
            let request = meshwork_query::request_access(catalog, &governance, &principal, INTERFACE, &product, AccessAsk { purpose, until }).await?;
            match format {
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&request)?),
                ReportFormat::Text => println!(
                    "access request {} for {} is pending; the owners of domain `{}` decide it (`meshwork access list` shows its state)",
                    request.id, request.product, request.product.domain
                ),
            }
        }
        AccessCommand::Approve { id, comment, format } => {
            let (request, grant) = meshwork_query::answer_request(catalog, &principal, INTERFACE, id, AccessAnswer { approve: true, comment }).await?;
            let grant = grant.context("an approval always makes a grant")?;
            match format {
                ReportFormat::Json => println!("{}", serde_json::json!({ "request": request, "grant": grant })),
                ReportFormat::Text => println!(
                    "approved request {}: `{}` reads {} by grant {} {}",
                    request.id,
                    grant.principal,
                    grant.product,
                    grant.id,
                    grant.expires_at.map_or_else(|| "with no end date".to_owned(), |end| format!("until {}", meshwork_catalog::time::format(&end)))
                ),
            }
        }
        AccessCommand::Deny { id, comment, format } => {
            let (request, _) = meshwork_query::answer_request(catalog, &principal, INTERFACE, id, AccessAnswer { approve: false, comment: Some(comment) }).await?;
            match format {
                ReportFormat::Json => println!("{}", serde_json::json!({ "request": request, "grant": null })),
                ReportFormat::Text => println!("denied request {} of `{}` for {}", request.id, request.principal, request.product),
            }
        }
        AccessCommand::Withdraw { id } => {
            let request = meshwork_query::withdraw_request(catalog, &principal, INTERFACE, id).await?;
            println!("withdrew request {} for {}", request.id, request.product);
        }
        AccessCommand::Revoke { target, grantee } => {
            let target = match grantee {
                Some(grantee) => RevokeTarget::Holder { product: target.parse().map_err(|e| anyhow::anyhow!("`{target}`: {e}"))?, principal: grantee },
                None => RevokeTarget::Grant(target.parse::<GrantId>().map_err(|e| anyhow::anyhow!("{e}, or a product followed by the grantee"))?),
            };
            for grant in meshwork_query::revoke(catalog, &principal, INTERFACE, target).await? {
                println!("revoked grant {}: `{}` no longer reads {} by it", grant.id, grant.principal, grant.product);
            }
        }
        AccessCommand::Grants { product, all, format } => {
            let product = match product.as_deref() {
                Some(name) => Some(meshwork_query::seen_product(catalog, &governance, &principal, name).await?.0.id),
                None => None,
            };
            let grants = meshwork_query::grants(catalog, &principal, product.as_ref(), all).await?;
            match format {
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&grants)?),
                ReportFormat::Text if grants.is_empty() => println!("no grants"),
                ReportFormat::Text => print!("{}", grant_table(&grants)),
            }
        }
    }
    Ok(())
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| meshwork_catalog::time::format(&at))
}

fn request_table(requests: &[AccessRequest]) -> String {
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.product.to_string(),
                r.principal.clone(),
                r.status.to_string(),
                time(r.until),
                r.purpose.clone(),
                r.decided_by.clone().unwrap_or_else(|| "-".into()),
                r.comment.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    text_table(&["ID", "PRODUCT", "PRINCIPAL", "STATUS", "UNTIL", "PURPOSE", "DECIDED BY", "COMMENT"], &rows)
}

/// Grants as a table (also under `meshwork product show`).
pub fn grant_table(grants: &[Grant]) -> String {
    let now = Utc::now();
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| {
            let state = match (g.revoked_at, g.expires_at) {
                (Some(_), _) => "revoked",
                (None, Some(end)) if end <= now => "expired",
                _ => "active",
            };
            vec![g.id.to_string(), g.product.to_string(), g.principal.clone(), state.to_owned(), time(g.expires_at), g.granted_by.clone(), g.purpose.clone()]
        })
        .collect();
    text_table(&["GRANT", "PRODUCT", "PRINCIPAL", "STATE", "EXPIRES", "GRANTED BY", "PURPOSE"], &rows)
}
