//! The sections of a product page, each rendered from what [`super::product::ProductPage`]
//! loaded for one viewer: header, lifecycle banner, contract (with this viewer's masks and row
//! filter), quality, service levels, lineage lists, versions, access, consumers, connect.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use meshwork_catalog::{QualityRun, RuleStatus, RunOutcome, SloStatus, VersionRecord};
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;
use meshwork_core::lifecycle::{Deprecation, Lifecycle};
use meshwork_core::lineage::ProductLineage;
use meshwork_query::Consumers;

use super::chart;
use super::connect;
use super::graph::LineageGraph;
use super::product::ProductPage;
use super::viewer::Viewer;

/// Title, address, domain, owner, status, tags and description.
pub(super) fn header(page: &ProductPage) -> Markup {
    let r = &page.record;
    html! {
        header.product-header {
            p.breadcrumb { a href=(format!("/domains/{}", r.id.domain)) { (r.id.domain) } " / " (r.id.name) }
            h1 { (r.title.as_deref().unwrap_or(r.id.name.as_str())) }
            dl.facts {
                dt { "Address" } dd { code { (r.id) } }
                dt { "Domain" } dd { a href=(format!("/domains/{}", r.id.domain)) { (r.id.domain) } }
                dt { "Owner" } dd { (r.owner.as_deref().unwrap_or("not declared")) }
                dt { "Version" } dd { (r.version) }
                dt { "Status" } dd { span class=(format!("badge status-{}", r.status)) { (r.status) } }
                @if !r.tags.is_empty() {
                    dt { "Tags" } dd { ul.tags { @for tag in &r.tags { li { (tag) } } } }
                }
            }
            @if let Some(description) = &r.description { p.description { (description) } }
        }
    }
}

/// The deprecation banner of a deprecated or sunset product; the successor is named (and
/// linked) only when the viewer may read it (`descriptor` already leaves it out otherwise).
pub(super) fn lifecycle(descriptor: &ProductDescriptor) -> Markup {
    let (deprecation, gone) = match descriptor.lifecycle(Utc::now().date_naive()) {
        Lifecycle::Served => return html! {},
        Lifecycle::Deprecated(d) => (d, false),
        Lifecycle::Sunset(d) => (d, true),
    };
    let Deprecation { sunset, successor, .. } = deprecation;
    html! {
        div.banner.warning role="status" {
            strong { @if gone { "No longer served." } @else { "Deprecated." } }
            " "
            @match (gone, sunset) {
                (true, Some(day)) => { "Its sunset was on " time datetime=(day) { (day) } "; its data is kept until its owners purge it." }
                (true, None) => {}
                (false, Some(day)) => { "It is served until " time datetime=(day) { (day) } ", then no more." }
                (false, None) => { "It is still served, without a sunset date yet." }
            }
            " "
            @match &successor {
                Some(next) => { "Move to " a href=(format!("/products/{next}")) { (next) } "." }
                None => { "Ask its owners what replaces it." }
            }
        }
    }
}

/// The contract: every column with its type, nullability, description and classification, and
/// what this viewer sees of it (masked, with the mask kind). A row filter on the viewer is
/// noted; only owners see its SQL.
pub(super) fn contract(page: &ProductPage) -> Markup {
    let masks = &page.decision.masks;
    let key = &page.descriptor.contract.primary_key;
    html! {
        section #contract aria-labelledby="contract-h" {
            h2 #contract-h { "Contract" }
            @if !page.decision.row_filters.is_empty() {
                div.note.row-filter-note role="note" {
                    strong { "Row filter: " }
                    "you see only the rows this product's access policy lets you read."
                    @if page.owner {
                        " As its owner you see the filter:"
                        ul { @for filter in &page.decision.row_filters { li { code { (filter) } } } }
                    }
                }
            }
            @if !masks.is_empty() {
                p.note { (masks.len()) " of " (page.descriptor.contract.columns.len()) " columns are masked for you." }
            }
            div.table-scroll tabindex="0" role="region" aria-label="Columns" {
                table.columns {
                    thead { tr { th scope="col" { "Column" } th scope="col" { "Type" } th scope="col" { "Nullable" } th scope="col" { "Classification" } th scope="col" { "For you" } th scope="col" { "Description" } } }
                    tbody {
                        @for column in &page.descriptor.contract.columns {
                            tr {
                                th scope="row" {
                                    code { (column.name) }
                                    @if key.contains(&column.name) { " " abbr.badge title="primary key" { "key" } }
                                }
                                td { code { (column.data_type) } }
                                td { @if column.nullable { "yes" } @else { "no" } }
                                td {
                                    @match column.classification {
                                        Some(class) => span class=(format!("badge class-{}", class.as_str())) { (class.as_str()) },
                                        None => span.muted { "—" },
                                    }
                                }
                                td {
                                    @match masks.get(&column.name) {
                                        Some(mask) => span.badge.masked title=(format!("masked for you: {}", mask.kind())) { "masked (" (mask.kind()) ")" },
                                        None => span.muted { "as stored" },
                                    }
                                }
                                td { (column.description.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The newest quality run's rules and the run history.
pub(super) fn quality(runs: &[QualityRun]) -> Markup {
    html! {
        section #quality aria-labelledby="quality-h" {
            h2 #quality-h { "Quality" }
            @match runs.first() {
                None => p { "No quality runs yet." },
                Some(latest) => {
                    p { "Latest run " (when(&latest.at)) ": " (outcome(latest.outcome)) ", " (latest.row_count) " rows checked." }
                    @if !latest.results.is_empty() {
                        div.table-scroll tabindex="0" role="region" aria-label="Rules of the latest run" {
                            table {
                                thead { tr { th scope="col" { "Rule" } th scope="col" { "Check" } th scope="col" { "Severity" } th scope="col" { "Result" } th scope="col" { "Failing" } th scope="col" { "Message" } } }
                                tbody {
                                    @for r in &latest.results {
                                        tr {
                                            th scope="row" { (r.name) }
                                            td { (r.rule) }
                                            td { (r.severity) }
                                            td { span class=(format!("badge rule-{}", r.status)) { (r.status) } }
                                            td { (r.failing) " of " (r.checked) }
                                            td { (r.message) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    h3 { "History" }
                    div.table-scroll tabindex="0" role="region" aria-label="Quality runs" {
                        table {
                            thead { tr { th scope="col" { "When" } th scope="col" { "Trigger" } th scope="col" { "Outcome" } th scope="col" { "Rows" } th scope="col" { "Publication" } th scope="col" { "Rules not passed" } } }
                            tbody {
                                @for run in runs {
                                    tr {
                                        td { (when(&run.at)) }
                                        td { (run.trigger) }
                                        td { (outcome(run.outcome)) }
                                        td { (run.row_count) }
                                        td { @match run.published_seq { Some(seq) => { "#" (seq) }, None => span.muted { "none" } } }
                                        td { (run.results.iter().filter(|r| r.status != RuleStatus::Passed).map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each objective's newest status, value and error budget, with the budget over the window.
pub(super) fn slo(page: &ProductPage) -> Markup {
    html! {
        section #slo aria-labelledby="slo-h" {
            h2 #slo-h { "Service levels" }
            @match (&page.descriptor.slo, page.slo_latest.is_empty()) {
                (None, _) => p { "This product declares no service level objectives." },
                (Some(_), true) => p { "Not evaluated yet: " code { "meshwork serve" } " evaluates them in the background." },
                (Some(declared), false) => {
                    p { "Target: " (declared.target) " % of evaluations meet each objective over " (span(declared.window.seconds)) "; what is left is the error budget." }
                    ul.slo-list {
                        @for check in &page.slo_latest {
                            @let history: Vec<(DateTime<Utc>, f64)> = page.slo_history.iter().filter(|c| c.objective == check.objective).filter_map(|c| c.budget_remaining.map(|b| (c.at, b))).collect();
                            li.slo {
                                h3 { (check.objective) " " span class=(format!("badge slo-{}", check.status)) { (slo_status(check.status)) } }
                                p {
                                    @if page.slo_messages { (check.message) } @else { "Measured against an upstream product." }
                                    @if let Some(left) = check.budget_remaining { " Error budget left: " strong { (chart::percent(left)) } "." }
                                }
                                (chart::budget(check.objective.as_str(), &history))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The lineage graph's products as lists, for reading without the drawing.
pub(super) fn lineage_lists(graph: &LineageGraph) -> Markup {
    html! {
        div.lineage-lists {
            @for (title, downstream) in [("Upstream", false), ("Downstream", true)] {
                @let side = graph.side(downstream);
                div {
                    h3 { (title) }
                    @if side.is_empty() { p.muted { "none you can read" } }
                    @else { ul { @for p in side { li { a href=(format!("/products/{p}")) { (p) } } } } }
                }
            }
        }
    }
}

/// The column lineage fragment: each column's sources (`lineage` already without sources in
/// hidden products).
pub(super) fn column_lineage(id: &ProductId, lineage: Option<&ProductLineage>) -> Markup {
    html! {
        div.column-lineage-body id=(format!("column-lineage-{}", id.to_string().replace('.', "-"))) {
            @match lineage {
                None => p { "No column lineage is recorded for the current version." },
                Some(lineage) => {
                    div.table-scroll tabindex="0" role="region" aria-label="Column lineage" {
                        table {
                            thead { tr { th scope="col" { "Column" } th scope="col" { "Comes from" } th scope="col" { "How" } } }
                            tbody {
                                @for column in &lineage.columns {
                                    @if column.sources.is_empty() {
                                        tr { th scope="row" { code { (column.name) } } td.muted colspan="2" { "no source you can read" } }
                                    }
                                    @for (i, source) in column.sources.iter().enumerate() {
                                        tr {
                                            @if i == 0 { th scope="row" rowspan=(column.sources.len()) { code { (column.name) } } }
                                            td {
                                                @match &source.product {
                                                    Some(p) => { a href=(format!("/products/{p}")) { (p) } "." code { (source.column) } },
                                                    None => { "input " code { (source.input) } ", column " code { (source.column) } },
                                                }
                                            }
                                            td { (source.derivation.as_str()) @if !source.carries_value { " (value not carried)" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Published versions, newest first, with how to read an earlier one.
pub(super) fn versions(id: &ProductId, versions: &[VersionRecord]) -> Markup {
    html! {
        section #versions aria-labelledby="versions-h" {
            h2 #versions-h { "Versions" }
            p { "Read an earlier publication with " code { (format!("SELECT * FROM {}.\"{}@N\"", id.domain, id.name)) } "." }
            div.table-scroll tabindex="0" role="region" aria-label="Publications" {
                table {
                    thead { tr { th scope="col" { "Publication" } th scope="col" { "Version" } th scope="col" { "Rows" } th scope="col" { "Published" } } }
                    tbody {
                        @for v in versions {
                            tr { td { "#" (v.seq) } td { (v.version) } td { (v.row_count) } td { (when(&v.published_at)) } }
                        }
                    }
                }
            }
        }
    }
}

/// Who may read the product: the viewer can (they see the page); owners also see the readers
/// the descriptor names, the pending requests and every active grant with a Revoke button; a
/// grantee sees its own grant.
pub(super) fn access(page: &ProductPage, viewer: &Viewer) -> Markup {
    let back = format!("/products/{}", page.record.id);
    html! {
        section #access aria-labelledby="access-h" {
            h2 #access-h { "Access" }
            @match &page.decision.aggregate {
                Some(rule) => {
                    p #aggregate-only { strong { "You can read this product only in aggregate." } " Every query must aggregate it; groups standing for fewer than " (rule.min_group_size) " rows are left out of answers"
                        @if !rule.hidden.is_empty() { ", and you may not use " @for (i, c) in rule.hidden.iter().enumerate() { @if i > 0 { ", " } code { (c) } } }
                        "." }
                    @if let Some(privacy) = &rule.privacy {
                        p #private-answers { "Answers are differentially private (" (privacy.mechanism) " noise): each costs ε " (privacy.epsilon) " of your budget of " (privacy.budget) " per " (privacy.window) "." }
                    }
                }
                None => p { "You can read this product" @if page.decision.masks.is_empty() && page.decision.row_filters.is_empty() { " in full." } @else { ", with the masks and row filter shown under Contract." } },
            }
            @if page.owner && let Some(rule) = page.descriptor.access.as_ref().and_then(|a| a.aggregate_only.as_ref()) {
                p { "Aggregate-only readers: " @for (i, r) in rule.readers.iter().enumerate() { @if i > 0 { ", " } code { (r) } } " (groups of at least " (rule.min_group_size) " rows)." }
            }
            @if page.owner {
                @match page.descriptor.access.as_ref().map(|a| &a.readers) {
                    Some(readers) if !readers.is_empty() => p { "Readers besides the " (page.record.id.domain) " domain: " @for (i, r) in readers.iter().enumerate() { @if i > 0 { ", " } code { (r) } } "." },
                    _ => p { "Only the " (page.record.id.domain) " domain and administrators read it (no " code { "access" } " block)." },
                }
                @if page.pending > 0 {
                    p.note { (page.pending) " pending access " @if page.pending == 1 { "request" } @else { "requests" } ": decide on " a href="/access" { "Access" } "." }
                }
            }
            h3 { "Grants" }
            @if page.grants.is_empty() {
                p.muted { @if page.owner { "No active grants: everyone reading it is a reader by its descriptor." } @else { "You read it as one of its readers, not by a grant." } }
            } @else {
                (super::access::grants_table(viewer, &page.grants, page.owner, &back))
            }
        }
    }
}

/// Who depends on the product (owners only): products built from it, recent readers and
/// subscribers.
pub(super) fn consumers(c: &Consumers) -> Markup {
    html! {
        section #consumers aria-labelledby="consumers-h" {
            h2 #consumers-h { "Consumers" }
            h3 { "Products built from it" }
            @if c.products.is_empty() { p.muted { "none you can read" } }
            @else { ul { @for p in &c.products { li { a href=(format!("/products/{p}")) { (p) } } } } }
            h3 { "Readers in the last " (c.window_days) " days" }
            @if c.readers.is_empty() { p.muted { "none" } }
            @else {
                div.table-scroll tabindex="0" role="region" aria-label="Readers" {
                    table {
                        thead { tr { th scope="col" { "Principal" } th scope="col" { "Read as" } th scope="col" { "Interface" } th scope="col" { "Queries" } th scope="col" { "Last read" } } }
                        tbody {
                            @for r in &c.readers {
                                tr { th scope="row" { (r.reader.principal) } td { code { (r.product) } } td { (r.reader.interface) } td { (r.reader.queries) } td { (when(&r.reader.last_read)) } }
                            }
                        }
                    }
                }
            }
            h3 { "Subscribers" }
            @if c.subscribers.is_empty() { p.muted { "none" } }
            @else {
                ul {
                    @for s in &c.subscribers {
                        li {
                            (s.principal)
                            @if s.events.is_empty() { " (all events)" } @else { " (" (s.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) ")" }
                            @if s.webhook.is_some() { ", by webhook" }
                        }
                    }
                }
            }
        }
    }
}

/// The sample query with a link to the console, and the connection snippets.
pub(super) fn query_it(page: &ProductPage) -> Markup {
    let sql = connect::sample_sql(&page.record.id);
    let console: String = url::form_urlencoded::Serializer::new(String::new()).append_pair("sql", &sql).finish();
    html! {
        section #connect aria-labelledby="connect-h" {
            h2 #connect-h { "Query it" }
            pre tabindex="0" { code { (sql) } }
            p { a.button href=(format!("/console?{console}")) { "Open in the SQL console" } }
            h3 { "How to connect" }
            @match &page.endpoints {
                Some(endpoints) => (connect::snippets(&page.record.id, &page.principal, endpoints)),
                None => p { "This server's addresses are not known here." },
            }
        }
    }
}

/// A window in words: whole days, else hours, else minutes.
fn span(seconds: u64) -> String {
    let (n, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 => (s / 3_600, "hour"),
        s => (s.div_ceil(60), "minute"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A quality outcome as a badge.
fn outcome(outcome: RunOutcome) -> Markup {
    html! { span class=(format!("badge run-{outcome}")) { (outcome) } }
}

/// An SLO status in words.
fn slo_status(status: SloStatus) -> &'static str {
    match status {
        SloStatus::Met => "met",
        SloStatus::AtRisk => "at risk",
        SloStatus::Violated => "violated",
        SloStatus::Unknown => "unknown",
    }
}

/// A time as the page shows it (UTC, to the minute), machine-readable in `datetime`.
pub(super) fn when(at: &DateTime<Utc>) -> Markup {
    html! { time datetime=(meshwork_catalog::time::format(at)) { (at.format("%Y-%m-%d %H:%M UTC")) } }
}
