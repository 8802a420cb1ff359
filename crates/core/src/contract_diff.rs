//! The one diff between a product's published descriptor and its next one: every change to what
//! consumers rely on (columns, key, quality rules, SLOs, access), each classified breaking or
//! compatible. `plan` shows it, and governance policies receive it as `input.changes`, so the
//! classification lives here and nowhere else (docs/evolution.md lists the rules).
//!
//! The point of view is the consumer's: a change is breaking when a query, a dashboard or a
//! derived product that worked against the published version can fail or silently get less
//! than it was promised (fewer rows, masked values, weaker guarantees); it is compatible when
//! everything that worked keeps working.

use std::collections::{BTreeMap, BTreeSet};

use crate::column_type::ColumnType;
use crate::descriptor::{Access, Contract, ProductDescriptor, QualityCheck, QualityRule, Severity, Slo};

crate::keyword_enum! {
    /// What changed, as written to `input.changes[].kind` and shown by `plan`.
    pub enum ChangeKind ("contract change") {
        /// A column is gone (removed, or renamed: a rename is a removal and an addition).
        ColumnRemoved => "column_removed",
        /// A column was added.
        ColumnAdded => "column_added",
        /// A column's type widened: every old value is representable.
        TypeWidened => "type_widened",
        /// A column's type narrowed or changed to an incompatible one.
        TypeChanged => "type_changed",
        /// A nullable column became non-nullable.
        BecameNonNullable => "became_non_nullable",
        /// A non-nullable column became nullable.
        BecameNullable => "became_nullable",
        /// The primary key names other columns.
        PrimaryKeyChanged => "primary_key_changed",
        /// The primary key lists the same columns in another order.
        PrimaryKeyReordered => "primary_key_reordered",
        /// A quality rule is gone.
        QualityRuleRemoved => "quality_rule_removed",
        /// A quality rule was added.
        QualityRuleAdded => "quality_rule_added",
        /// A quality rule accepts more than before (or only warns now).
        QualityRuleWeakened => "quality_rule_weakened",
        /// A quality rule accepts less than before (or blocks now).
        QualityRuleStrengthened => "quality_rule_strengthened",
        /// A quality rule checks something else (another column, pattern or query).
        QualityRuleChanged => "quality_rule_changed",
        /// An SLO objective is gone or promises less.
        SloWeakened => "slo_weakened",
        /// An SLO objective was added or promises more.
        SloStrengthened => "slo_strengthened",
        /// A principal may no longer read the product.
        ReaderRemoved => "reader_removed",
        /// A principal may now read the product.
        ReaderAdded => "reader_added",
        /// A row filter was added or changed: readers may see fewer rows.
        RowFilterChanged => "row_filter_changed",
        /// The row filter was removed: readers see every row.
        RowFilterRemoved => "row_filter_removed",
        /// A column is masked, or masked differently.
        MaskAdded => "mask_added",
        /// A column is no longer masked.
        MaskRemoved => "mask_removed",
        /// A principal no longer sees unmasked values.
        UnmaskedForRemoved => "unmasked_for_removed",
        /// A principal now sees unmasked values.
        UnmaskedForAdded => "unmasked_for_added",
        /// Who reads the product only in aggregate, or how (group size, hidden columns,
        /// privacy), changed.
        AggregateOnlyChanged => "aggregate_only_changed",
        /// Title, description, tags, owner, column descriptions or classifications.
        Documentation => "documentation",
        /// The product became `deprecated`: still served, with a warning on every read, until
        /// its sunset. Nothing breaks yet, but every reader is affected (`plan` names them).
        Deprecated => "deprecated",
        /// A deprecated product's sunset date or successor changed.
        SunsetChanged => "sunset_changed",
        /// A deprecated product is `active` (or `draft`) again.
        Reactivated => "reactivated",
    }
}

crate::keyword_enum! {
    /// What part of the product a change is about.
    pub enum ChangeCategory ("change category") {
        /// Columns, types, nullability, primary key.
        Schema => "schema",
        /// Quality rules.
        Quality => "quality",
        /// Service level objectives.
        Slo => "slo",
        /// Readers, row filter, masks. Narrowing access is breaking for the consumers who lose
        /// it, but it is also how an owner protects data: the built-in major-bump policy lets it
        /// through at once.
        Access => "access",
        /// Titles, descriptions, tags, owner, classifications.
        Documentation => "documentation",
        /// Status, sunset date and successor: deprecation announces a removal without
        /// breaking anything yet.
        Lifecycle => "lifecycle",
    }
}

impl ChangeKind {
    /// The part of the product changes of this kind are about.
    pub fn category(self) -> ChangeCategory {
        use ChangeKind::*;
        match self {
            ColumnRemoved | ColumnAdded | TypeWidened | TypeChanged | BecameNonNullable | BecameNullable | PrimaryKeyChanged | PrimaryKeyReordered => ChangeCategory::Schema,
            QualityRuleRemoved | QualityRuleAdded | QualityRuleWeakened | QualityRuleStrengthened | QualityRuleChanged => ChangeCategory::Quality,
            SloWeakened | SloStrengthened => ChangeCategory::Slo,
            ReaderRemoved | ReaderAdded | RowFilterChanged | RowFilterRemoved | MaskAdded | MaskRemoved | UnmaskedForRemoved | UnmaskedForAdded | AggregateOnlyChanged => ChangeCategory::Access,
            Documentation => ChangeCategory::Documentation,
            Deprecated | SunsetChanged | Reactivated => ChangeCategory::Lifecycle,
        }
    }

    /// Whether changes of this kind can break existing consumers (see the module docs).
    pub fn breaking(self) -> bool {
        use ChangeKind::*;
        matches!(
            self,
            ColumnRemoved
                | TypeChanged
                | BecameNonNullable
                | BecameNullable
                | PrimaryKeyChanged
                | QualityRuleRemoved
                | QualityRuleWeakened
                | QualityRuleChanged
                | SloWeakened
                | ReaderRemoved
                | RowFilterChanged
                | MaskAdded
                | UnmaskedForRemoved
        )
    }
}

/// One change, with what it is about and a line for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContractChange {
    /// What changed.
    pub kind: ChangeKind,
    /// The part of the product it is about ([`ChangeKind::category`]).
    pub category: ChangeCategory,
    /// What it is about: a column, a rule, an objective, a principal, or a descriptor field.
    pub subject: String,
    /// The change in one sentence, naming the subject, e.g. ``column `amount` widened from
    /// decimal(10,2) to decimal(12,2)``.
    pub detail: String,
    /// Whether existing consumers can break: [`ChangeKind::breaking`], stored so every reader
    /// of the diff (policies, `plan`, JSON) sees the same answer.
    pub breaking: bool,
}

fn change(kind: ChangeKind, subject: impl Into<String>, detail: impl Into<String>) -> ContractChange {
    ContractChange { kind, category: kind.category(), subject: subject.into(), detail: detail.into(), breaking: kind.breaking() }
}

/// Every change from `old` (published) to `new` (in the repository), columns first, in a stable
/// order.
pub fn diff(old: &ProductDescriptor, new: &ProductDescriptor) -> Vec<ContractChange> {
    let mut out = Vec::new();
    contract(&old.contract, &new.contract, &mut out);
    quality(&old.quality, &new.quality, &mut out);
    slo(old.slo.as_ref(), new.slo.as_ref(), &mut out);
    access(old.access.as_ref(), new.access.as_ref(), &mut out);
    for (field, before, after) in [
        ("title", &old.title, &new.title),
        ("description", &old.description, &new.description),
        ("owner", &old.owner, &new.owner),
    ] {
        if before != after {
            out.push(change(ChangeKind::Documentation, field, format!("{field} changed from {} to {}", shown(before.as_deref()), shown(after.as_deref()))));
        }
    }
    if old.tags != new.tags {
        out.push(change(ChangeKind::Documentation, "tags", format!("tags changed from [{}] to [{}]", old.tags.join(", "), new.tags.join(", "))));
    }
    lifecycle(old, new, &mut out);
    out
}

fn lifecycle(old: &ProductDescriptor, new: &ProductDescriptor, out: &mut Vec<ContractChange>) {
    use crate::descriptor::ProductStatus::Deprecated;
    let terms = |d: &ProductDescriptor| {
        let sunset = d.sunset.map_or_else(|| "no sunset date".to_owned(), |s| format!("sunset {s}"));
        let successor = d.successor.as_ref().map_or_else(|| "no successor".to_owned(), |s| format!("successor `{s}`"));
        format!("{sunset}, {successor}")
    };
    match (old.status == Deprecated, new.status == Deprecated) {
        (false, true) => out.push(change(ChangeKind::Deprecated, "status", format!("the product is deprecated ({})", terms(new)))),
        (true, false) => out.push(change(ChangeKind::Reactivated, "status", format!("the product is `{}` again, no longer deprecated", new.status))),
        (true, true) if old.sunset != new.sunset || old.successor != new.successor => {
            out.push(change(ChangeKind::SunsetChanged, "sunset", format!("deprecation terms changed from {} to {}", terms(old), terms(new))))
        }
        _ => {}
    }
}

fn shown(text: Option<&str>) -> String {
    match text {
        Some(text) if text.chars().count() > 120 => format!("`{}…`", text.chars().take(120).collect::<String>()),
        Some(text) => format!("`{text}`"),
        None => "(none)".into(),
    }
}

fn contract(old: &Contract, new: &Contract, out: &mut Vec<ContractChange>) {
    for column in &old.columns {
        let Some(now) = new.column(&column.name) else {
            out.push(change(ChangeKind::ColumnRemoved, &column.name, format!("column `{}` was removed (or renamed)", column.name)));
            continue;
        };
        if now.data_type != column.data_type {
            let (kind, verb) = if widens(column.data_type, now.data_type) { (ChangeKind::TypeWidened, "widened") } else { (ChangeKind::TypeChanged, "changed type") };
            out.push(change(kind, &column.name, format!("column `{}` {verb} from {} to {}", column.name, column.data_type, now.data_type)));
        }
        match (column.nullable, now.nullable) {
            (true, false) => out.push(change(ChangeKind::BecameNonNullable, &column.name, format!("column `{}` became non-nullable", column.name))),
            (false, true) => out.push(change(ChangeKind::BecameNullable, &column.name, format!("column `{}` became nullable", column.name))),
            _ => {}
        }
        if now.description != column.description {
            out.push(change(ChangeKind::Documentation, &column.name, format!("column `{}`: description changed", column.name)));
        }
        if now.classification != column.classification {
            let name = |c: Option<crate::descriptor::Classification>| c.map_or("(none)".to_owned(), |c| format!("{c:?}").to_lowercase());
            out.push(change(ChangeKind::Documentation, &column.name, format!("column `{}`: classification changed from {} to {}", column.name, name(column.classification), name(now.classification))));
        }
    }
    for column in &new.columns {
        if old.column(&column.name).is_none() {
            let nullability = if column.nullable { "" } else { ", not null" };
            out.push(change(ChangeKind::ColumnAdded, &column.name, format!("column `{}` ({}{nullability}) was added", column.name, column.data_type)));
        }
    }
    if old.primary_key != new.primary_key {
        let set = |key: &[String]| key.iter().cloned().collect::<BTreeSet<_>>();
        let kind = if set(&old.primary_key) == set(&new.primary_key) { ChangeKind::PrimaryKeyReordered } else { ChangeKind::PrimaryKeyChanged };
        out.push(change(kind, "primary_key", format!("primary key changed from [{}] to [{}]", old.primary_key.join(", "), new.primary_key.join(", "))));
    }
}

/// Whether every value of `old` is representable in `new`.
pub fn widens(old: ColumnType, new: ColumnType) -> bool {
    use ColumnType::*;
    let int_digits = |t: ColumnType| match t {
        TinyInt => Some(3),
        SmallInt => Some(5),
        Int => Some(10),
        BigInt => Some(19),
        _ => None,
    };
    match (old, new) {
        (Float, Double) | (Date, Timestamp) => true,
        (Decimal { precision: p1, scale: s1 }, Decimal { precision: p2, scale: s2 }) => s2 >= s1 && (p2 as i16 - s2 as i16) >= (p1 as i16 - s1 as i16),
        // A double holds every integer of up to 53 bits exactly.
        (o, Double) => int_digits(o).is_some_and(|d| d <= 10),
        (o, Decimal { precision, scale }) => int_digits(o).is_some_and(|digits| precision as i16 - scale as i16 >= digits),
        (o, n) => matches!((int_digits(o), int_digits(n)), (Some(a), Some(b)) if b >= a),
    }
}

fn quality(old: &[QualityRule], new: &[QualityRule], out: &mut Vec<ContractChange>) {
    let by_name = |rules: &[QualityRule]| rules.iter().map(|r| (r.name.clone(), r.clone())).collect::<BTreeMap<_, _>>();
    let (old, new) = (by_name(old), by_name(new));
    for (name, before) in &old {
        let Some(after) = new.get(name) else {
            out.push(change(ChangeKind::QualityRuleRemoved, name, format!("quality rule `{name}` ({}) was removed", before.check.keyword())));
            continue;
        };
        match (before.severity, after.severity) {
            (Severity::Error, Severity::Warn) => out.push(change(ChangeKind::QualityRuleWeakened, name, format!("quality rule `{name}` only warns now (a failure no longer blocks publishing)"))),
            (Severity::Warn, Severity::Error) => out.push(change(ChangeKind::QualityRuleStrengthened, name, format!("quality rule `{name}` blocks publishing now"))),
            _ => {}
        }
        if before.check != after.check {
            let (kind, detail) = check_change(&before.check, &after.check);
            out.push(change(kind, name, format!("quality rule `{name}`: {detail}")));
        }
    }
    for (name, rule) in &new {
        if !old.contains_key(name) {
            out.push(change(ChangeKind::QualityRuleAdded, name, format!("quality rule `{name}` ({}) was added", rule.check.keyword())));
        }
    }
}

/// How one rule's check changed: weaker, stronger, or checking something else.
fn check_change(old: &QualityCheck, new: &QualityCheck) -> (ChangeKind, String) {
    use ChangeKind::{QualityRuleChanged, QualityRuleStrengthened, QualityRuleWeakened};
    let ordered = |weaker: bool, stronger: bool, what: &str| -> (ChangeKind, String) {
        match (weaker, stronger) {
            (true, false) => (QualityRuleWeakened, format!("{what} let more data pass")),
            (false, true) => (QualityRuleStrengthened, format!("{what} let less data pass")),
            _ => (QualityRuleChanged, format!("{what} changed")),
        }
    };
    match (old, new) {
        (QualityCheck::AcceptedValues { column: c1, values: v1 }, QualityCheck::AcceptedValues { column: c2, values: v2 }) if c1 == c2 => {
            let (v1, v2): (BTreeSet<_>, BTreeSet<_>) = (v1.iter().collect(), v2.iter().collect());
            ordered(v2.is_superset(&v1), v2.is_subset(&v1), "accepted values")
        }
        (QualityCheck::Range { column: c1, min: a1, max: b1, .. }, QualityCheck::Range { column: c2, min: a2, max: b2, .. }) if c1 == c2 => {
            // Bounds are compared as numbers or ISO dates; other text is compared as is.
            let loosened = |before: &Option<String>, after: &Option<String>, lower: bool| match (before, after) {
                (Some(_), None) => Some(true),
                (None, Some(_)) => Some(false),
                (None, None) => None,
                (Some(b), Some(a)) => compare_bounds(b, a).map(|ord| if lower { ord.is_gt() } else { ord.is_lt() }).filter(|_| b != a),
            };
            let (low, high) = (loosened(a1, a2, true), loosened(b1, b2, false));
            let weaker = low == Some(true) || high == Some(true);
            let stronger = low == Some(false) || high == Some(false);
            ordered(weaker, stronger, "range")
        }
        (QualityCheck::RowCount { min: a1, max: b1, max_change_pct: p1 }, QualityCheck::RowCount { min: a2, max: b2, max_change_pct: p2 }) => {
            let looser_min = matches!((a1, a2), (Some(_), None)) || matches!((a1, a2), (Some(x), Some(y)) if y < x);
            let tighter_min = matches!((a1, a2), (None, Some(_))) || matches!((a1, a2), (Some(x), Some(y)) if y > x);
            let looser_max = matches!((b1, b2), (Some(_), None)) || matches!((b1, b2), (Some(x), Some(y)) if y > x);
            let tighter_max = matches!((b1, b2), (None, Some(_))) || matches!((b1, b2), (Some(x), Some(y)) if y < x);
            let looser_pct = matches!((p1, p2), (Some(_), None)) || matches!((p1, p2), (Some(x), Some(y)) if y > x);
            let tighter_pct = matches!((p1, p2), (None, Some(_))) || matches!((p1, p2), (Some(x), Some(y)) if y < x);
            ordered(looser_min || looser_max || looser_pct, tighter_min || tighter_max || tighter_pct, "row count bounds")
        }
        (QualityCheck::Freshness { column: c1, max_age: m1 }, QualityCheck::Freshness { column: c2, max_age: m2 }) if c1 == c2 => {
            ordered(m2.seconds > m1.seconds, m2.seconds < m1.seconds, "freshness")
        }
        _ => (QualityRuleChanged, format!("{} -> {}: checks something else", old.keyword(), new.keyword())),
    }
}

/// Orders two bounds as numbers, else as ISO dates or timestamps (which sort as text).
fn compare_bounds(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y),
        _ if a.len() >= 10 && b.len() >= 10 && a.as_bytes()[4] == b'-' && b.as_bytes()[4] == b'-' => Some(a.cmp(b)),
        _ => None,
    }
}

fn slo(old: Option<&Slo>, new: Option<&Slo>, out: &mut Vec<ContractChange>) {
    let objectives = |slo: Option<&Slo>| -> [Option<f64>; 3] {
        match slo {
            Some(s) => [s.freshness.map(|d| d.seconds as f64), s.completeness.as_ref().map(|c| c.min_ratio), s.availability],
            None => [None; 3],
        }
    };
    let mut compare = |objective: &str, before: Option<f64>, after: Option<f64>, more_is_stronger: bool| {
        let (weaker, detail) = match (before, after) {
            (Some(_), None) => (true, format!("{objective} objective removed")),
            (None, Some(_)) => (false, format!("{objective} objective added")),
            (Some(b), Some(a)) if b != a => {
                let show = |v: f64| if objective == "freshness" { duration(v) } else { v.to_string() };
                ((a < b) == more_is_stronger, format!("{objective} objective changed from {} to {}", show(b), show(a)))
            }
            _ => return,
        };
        out.push(change(if weaker { ChangeKind::SloWeakened } else { ChangeKind::SloStrengthened }, format!("slo.{objective}"), detail));
    };
    // A larger freshness age promises less; larger ratios and percentages promise more.
    let names = [("freshness", false), ("completeness", true), ("availability", true)];
    for ((objective, more_is_stronger), (before, after)) in names.into_iter().zip(objectives(old).into_iter().zip(objectives(new))) {
        compare(objective, before, after, more_is_stronger);
    }
    if let (Some(old), Some(new)) = (old, new) {
        compare("target", Some(old.target), Some(new.target), true);
    }
}

/// Seconds as the largest whole unit `product.yaml` would write (`24h`, `90m`).
pub(crate) fn duration(seconds: f64) -> String {
    let s = seconds as u64;
    match s {
        _ if s % 604_800 == 0 && s > 0 => format!("{}w", s / 604_800),
        _ if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        _ if s % 3_600 == 0 && s > 0 => format!("{}h", s / 3_600),
        _ if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

fn access(old: Option<&Access>, new: Option<&Access>, out: &mut Vec<ContractChange>) {
    // No `access` block: only the owning domain reads (and nothing is filtered or masked).
    let empty = Access { readers: Vec::new(), row_filter: None, masks: BTreeMap::new(), unmasked_for: Vec::new(), discoverable: false, aggregate_only: None };
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let set = |list: &[String]| list.iter().cloned().collect::<BTreeSet<_>>();
    for reader in set(&old.readers).difference(&set(&new.readers)) {
        out.push(change(ChangeKind::ReaderRemoved, reader, format!("`{reader}` may no longer read the product")));
    }
    for reader in set(&new.readers).difference(&set(&old.readers)) {
        out.push(change(ChangeKind::ReaderAdded, reader, format!("`{reader}` may now read the product")));
    }
    match (&old.row_filter, &new.row_filter) {
        (before, Some(after)) if before.as_ref() != Some(after) => {
            out.push(change(ChangeKind::RowFilterChanged, "row_filter", format!("row filter changed from {} to {}", shown(before.as_deref()), shown(Some(after)))))
        }
        (Some(before), None) => out.push(change(ChangeKind::RowFilterRemoved, "row_filter", format!("row filter {} was removed", shown(Some(before))))),
        _ => {}
    }
    for (column, mask) in &new.masks {
        match old.masks.get(column) {
            Some(before) if before == mask => {}
            Some(before) => out.push(change(ChangeKind::MaskAdded, column, format!("column `{column}`: mask changed from {} to {}", mask_name(before), mask_name(mask)))),
            None => out.push(change(ChangeKind::MaskAdded, column, format!("column `{column}` is masked with {}", mask_name(mask)))),
        }
    }
    for (column, mask) in &old.masks {
        if !new.masks.contains_key(column) {
            out.push(change(ChangeKind::MaskRemoved, column, format!("column `{column}` is no longer masked (was {})", mask_name(mask))));
        }
    }
    for principal in set(&old.unmasked_for).difference(&set(&new.unmasked_for)) {
        out.push(change(ChangeKind::UnmaskedForRemoved, principal, format!("`{principal}` now sees masked values")));
    }
    for principal in set(&new.unmasked_for).difference(&set(&old.unmasked_for)) {
        out.push(change(ChangeKind::UnmaskedForAdded, principal, format!("`{principal}` now sees unmasked values")));
    }
    if old.aggregate_only != new.aggregate_only {
        let shown = |rule: Option<&crate::aggregate::AggregateOnly>| match rule {
            None => "none".to_owned(),
            Some(rule) => format!(
                "{} in groups of at least {} rows{}",
                rule.readers.join(", "),
                rule.min_group_size,
                if rule.privacy.is_some() { ", differentially private" } else { "" }
            ),
        };
        out.push(change(
            ChangeKind::AggregateOnlyChanged,
            "aggregate_only",
            format!("aggregate-only access changed from {} to {}", shown(old.aggregate_only.as_ref()), shown(new.aggregate_only.as_ref())),
        ));
    }
}

fn mask_name(mask: &crate::descriptor::Mask) -> &'static str {
    mask.kind()
}
