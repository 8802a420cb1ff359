//! Search ranking, typo tolerance, prefixes, facets and access filtering on a small catalog.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use meshwork_catalog::{CatalogStore, DomainRecord, LatestOperations, OperationsMark, ProductRecord, RunOutcome, SloStatus, SqlCatalog};
use meshwork_core::descriptor::Classification;
use meshwork_core::id::DomainName;
use meshwork_core::principal::{Principal, PrincipalKind};

use super::*;
use crate::Governance;

/// The day the tests search on: after `marketing.campaigns`' sunset.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 4).unwrap()
}

/// A product from the body of its `product.yaml` (everything after name and domain).
fn product(id: &str, body: &str) -> ProductRecord {
    let (domain, name) = id.split_once('.').unwrap();
    let yaml = format!("name: {name}\ndomain: {domain}\nversion: 1.0.0\ninputs:\n  - {{ name: raw, source: {{ kind: csv, path: data/x.csv }} }}\n{body}");
    let descriptor = meshwork_core::parse::parse_product("product.yaml", &yaml).unwrap_or_else(|d| panic!("{d:?}\n{yaml}")).value;
    ProductRecord::of(descriptor, id.to_owned(), format!("file:///nonexistent/{domain}/{name}/"))
}

/// The catalog of these tests, in address order. `finance.ledger` has no `access` block (only
/// finance reads it) and mentions customers; the others are open to everyone.
fn catalog() -> Vec<ProductRecord> {
    vec![
        product(
            "finance.ledger",
            "title: General ledger\ndescription: Bookings per account and customer\nowner: group:finance\ntags: [accounting]\n\
             contract:\n  columns:\n    - { name: account, type: string, classification: confidential }\n    - { name: amount, type: double }\n",
        ),
        product(
            "marketing.campaigns",
            "title: Campaigns\ndescription: Spring launch and other campaigns\nowner: group:marketing\ntags: [crm]\nstatus: deprecated\nsunset: 2026-01-01\n\
             contract:\n  columns:\n    - { name: campaign, type: string, classification: public }\naccess:\n  readers: [\"*\"]\n",
        ),
        product(
            "marketing.segments",
            "title: Segments\ndescription: Groups of customers by what they bought\nowner: group:marketing\ntags: [crm]\nstatus: draft\n\
             contract:\n  columns:\n    - { name: segment, type: string }\naccess:\n  readers: [\"*\"]\n",
        ),
        product(
            "sales.customers",
            "title: Customers\ndescription: One row per customer\nowner: group:sales\ntags: [crm, core]\n\
             contract:\n  columns:\n    - { name: customer_id, type: bigint }\n    - { name: email, type: string, classification: pii, description: Primary contact address }\n\
             access:\n  readers: [\"*\"]\n",
        ),
        product(
            "sales.orders",
            "title: Orders\ndescription: Orders placed by customers\nowner: group:sales\ntags: [core]\n\
             contract:\n  columns:\n    - { name: order_id, type: bigint }\n    - { name: amount, type: double, classification: confidential }\n\
             access:\n  readers: [\"*\"]\n",
        ),
    ]
}

fn member(name: &str, domain: &str) -> Principal {
    Principal {
        name: name.into(),
        kind: PrincipalKind::User,
        groups: BTreeSet::new(),
        domains: BTreeSet::from([DomainName::new(domain).unwrap()]),
        attributes: BTreeMap::new(),
        admin: false,
    }
}

/// An index over `records` with governance as a mesh without policies has it (built-ins only),
/// and health: customers passed and meets its SLOs, orders failed and breaches one.
struct Fixture {
    index: ProductIndex,
    health: ProductHealth,
    governance: Governance,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(records: Vec<ProductRecord>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlCatalog::open_sqlite(&dir.path().join("catalog.db")).await.unwrap();
        let governance = Governance::load(&store as &dyn CatalogStore).await.unwrap();
        let domains = [DomainRecord {
            name: DomainName::new("sales").unwrap(),
            title: Some("Sales and revenue".into()),
            description: None,
            owners: Vec::new(),
            principal: Default::default(),
        }];
        let index = ProductIndex::build(1, records, &domains);
        let latest = LatestOperations {
            quality: BTreeMap::from([("sales.customers".parse().unwrap(), RunOutcome::Passed), ("sales.orders".parse().unwrap(), RunOutcome::Failed)]),
            slo: BTreeMap::from([
                ("sales.customers".parse().unwrap(), vec![SloStatus::AtRisk, SloStatus::Met]),
                ("sales.orders".parse().unwrap(), vec![SloStatus::Met, SloStatus::Violated]),
            ]),
        };
        let health = ProductHealth::build(&index, OperationsMark { quality_run: 2, slo_check: 4 }, &latest);
        Fixture { index, health, governance, _dir: dir }
    }

    fn search(&self, principal: &Principal, request: &SearchRequest) -> SearchResults {
        self.index.search(&self.governance, principal, &self.health, request, today())
    }

    /// The ids of the hits of `text` as the administrator.
    fn ids(&self, text: &str) -> Vec<String> {
        ids(&self.search(&Principal::local_admin(), &SearchRequest::text(text)))
    }
}

fn ids(results: &SearchResults) -> Vec<String> {
    results.hits.iter().map(|h| h.record.id.to_string()).collect()
}

fn counts<T: ToString>(facet: &[FacetCount<T>]) -> Vec<(String, usize)> {
    facet.iter().map(|c| (c.value.to_string(), c.count)).collect()
}

#[tokio::test]
async fn a_title_match_ranks_above_a_description_match() {
    let f = Fixture::new(catalog()).await;
    // Customers has the word in its name and title, segments and orders only in descriptions.
    let found = f.ids("customers");
    assert_eq!(found[0], "sales.customers", "{found:?}");
    assert!(found.contains(&"marketing.segments".to_owned()) && found.contains(&"sales.orders".to_owned()), "{found:?}");
    let hit = &f.search(&Principal::local_admin(), &SearchRequest::text("customers")).hits[0];
    assert_eq!(hit.matched, [MatchedField::Name, MatchedField::Title, MatchedField::Column, MatchedField::Description], "`customer` is a typo away: {hit:?}");
    assert_eq!(f.ids("orders")[0], "sales.orders");
}

#[tokio::test]
async fn an_exact_word_ranks_above_a_prefix_and_a_prefix_above_a_typo() {
    // Three products alike but for one title word: `ordar` (a typo away), `orders` (starts
    // with the query) and `order` (the query). Address order is the reverse of the ranking.
    let records = ["a", "b", "c"]
        .into_iter()
        .zip(["Ordar book", "Orders book", "Order book"])
        .map(|(name, title)| product(&format!("rank.book_{name}"), &format!("title: {title}\ncontract:\n  columns:\n    - {{ name: id, type: bigint }}\n")))
        .collect();
    let f = Fixture::new(records).await;
    let results = f.search(&Principal::local_admin(), &SearchRequest::text("order"));
    assert_eq!(ids(&results), ["rank.book_c", "rank.book_b", "rank.book_a"]);
    assert!(results.hits[0].score > results.hits[1].score && results.hits[1].score > results.hits[2].score, "{:?}", results.hits);
    // Equal scores keep address order.
    assert_eq!(f.ids("book"), ["rank.book_a", "rank.book_b", "rank.book_c"]);
}

#[tokio::test]
async fn typos_and_prefixes_find_products() {
    let f = Fixture::new(catalog()).await;
    assert_eq!(f.ids("custmer")[0], "sales.customers", "a letter missing");
    assert_eq!(f.ids("ordrs"), ["sales.orders"], "a letter missing from a 5-letter word");
    assert_eq!(f.ids("cust")[0], "sales.customers", "a prefix");
    assert_eq!(f.ids("ledgre"), ["finance.ledger"], "a transposition is two edits, but `ledge` is one away and starts `ledger`");
    assert_eq!(f.ids("lebxer"), Vec::<String>::new(), "two edits are too many for a 6-letter word");
    assert_eq!(f.ids("ordr"), ["sales.orders"], "a 4-letter word allows one edit");
    assert_eq!(f.ids("cmp"), Vec::<String>::new(), "no typos below 4 letters");
    assert_eq!(f.ids("bookngs"), ["finance.ledger"], "a typo in a description word");
    assert_eq!(f.ids("SALES ord"), ["sales.orders"], "every word must match, case-insensitively");
    assert_eq!(f.ids("revenue"), ["sales.customers", "sales.orders"], "the domain's title is indexed");
}

#[tokio::test]
async fn column_names_and_descriptions_are_searched() {
    let f = Fixture::new(catalog()).await;
    let results = f.search(&Principal::local_admin(), &SearchRequest::text("email"));
    assert_eq!(ids(&results), ["sales.customers"]);
    assert_eq!(results.hits[0].matched, [MatchedField::Column]);
    let results = f.search(&Principal::local_admin(), &SearchRequest::text("contact address"));
    assert_eq!(ids(&results), ["sales.customers"]);
    assert_eq!(results.hits[0].matched, [MatchedField::ColumnDescription]);
}

#[tokio::test]
async fn a_hidden_product_is_neither_listed_nor_counted() {
    let f = Fixture::new(catalog()).await;
    let request = SearchRequest::text("customer");
    let ana = member("ana", "sales");
    let fay = member("fay", "finance");
    let as_ana = f.search(&ana, &request);
    let as_fay = f.search(&fay, &request);
    assert!(!ids(&as_ana).contains(&"finance.ledger".to_owned()), "{:?}", ids(&as_ana));
    assert!(ids(&as_fay).contains(&"finance.ledger".to_owned()), "{:?}", ids(&as_fay));
    assert_eq!(as_fay.total, as_ana.total + 1);
    assert_eq!(counts(&as_ana.facets.domain), [("sales".into(), 2), ("marketing".into(), 1)]);
    assert_eq!(counts(&as_fay.facets.domain), [("sales".into(), 2), ("finance".into(), 1), ("marketing".into(), 1)]);
    assert!(!counts(&as_ana.facets.tag).iter().any(|(tag, _)| tag == "accounting"), "{:?}", as_ana.facets.tag);
    assert!(counts(&as_fay.facets.tag).contains(&("accounting".into(), 1)));
    assert_eq!(counts(&as_ana.facets.classification), [("confidential".into(), 1), ("pii".into(), 1)]);
    assert_eq!(counts(&as_fay.facets.classification), [("confidential".into(), 2), ("pii".into(), 1)]);
    // Filtering on the hidden product's own facet values finds nothing and counts nothing.
    let narrowed = SearchRequest { filters: FacetFilters { domain: vec!["finance".into()], ..FacetFilters::default() }, ..request.clone() };
    let as_ana = f.search(&ana, &narrowed);
    assert_eq!((as_ana.total, as_ana.hits.len()), (0, 0));
    assert!(as_ana.facets.tag.is_empty() && as_ana.facets.status.is_empty(), "{:?}", as_ana.facets);
    assert_eq!(counts(&as_ana.facets.domain), [("sales".into(), 2), ("marketing".into(), 1)], "the domain facet ignores its own filter");
    // Remembered decisions are per principal: searching as fay did not widen ana's view.
    assert_eq!(f.search(&ana, &SearchRequest::default()).total, 4);
    assert_eq!(f.search(&fay, &SearchRequest::default()).total, 5);
}

#[tokio::test]
async fn facets_count_and_filter() {
    let f = Fixture::new(catalog()).await;
    let ana = member("ana", "sales");
    let all = f.search(&ana, &SearchRequest::default());
    assert_eq!(ids(&all), ["marketing.campaigns", "marketing.segments", "sales.customers", "sales.orders"], "an empty query lists in address order");
    assert_eq!(counts(&all.facets.status), [("active".into(), 2), ("draft".into(), 1), ("sunset".into(), 1)], "past its sunset date");
    assert_eq!(counts(&all.facets.quality), [("none".into(), 2), ("passed".into(), 1), ("failed".into(), 1)]);
    assert_eq!(counts(&all.facets.slo), [("unknown".into(), 2), ("met".into(), 1), ("breached".into(), 1)]);
    assert_eq!(counts(&all.facets.tag), [("crm".into(), 3), ("core".into(), 2)]);

    let filtered = |filters: FacetFilters| ids(&f.search(&ana, &SearchRequest { filters, ..SearchRequest::default() }));
    assert_eq!(filtered(FacetFilters { quality: vec![QualityState::Failed], ..Default::default() }), ["sales.orders"]);
    assert_eq!(filtered(FacetFilters { quality: vec![QualityState::Failed, QualityState::Passed], ..Default::default() }), ["sales.customers", "sales.orders"], "OR within a facet");
    assert_eq!(filtered(FacetFilters { quality: vec![QualityState::Failed], domain: vec!["marketing".into()], ..Default::default() }), Vec::<String>::new(), "AND across facets");
    assert_eq!(filtered(FacetFilters { slo: vec![SloState::Met], ..Default::default() }), ["sales.customers"], "at risk still meets");
    assert_eq!(filtered(FacetFilters { classification: vec![Classification::Pii], ..Default::default() }), ["sales.customers"]);
    assert_eq!(filtered(FacetFilters { status: vec![ProductState::Sunset, ProductState::Draft], ..Default::default() }), ["marketing.campaigns", "marketing.segments"]);
    assert_eq!(filtered(FacetFilters { tag: vec!["core".into(), "nope".into()], ..Default::default() }), ["sales.customers", "sales.orders"]);
    assert_eq!(filtered(FacetFilters { domain: vec!["nope".into()], ..Default::default() }), Vec::<String>::new(), "an unknown value matches nothing");

    // With a tag chosen, the tag facet still counts every tag; the others count only tagged products.
    let crm = f.search(&ana, &SearchRequest { filters: FacetFilters { tag: vec!["crm".into()], ..Default::default() }, ..SearchRequest::default() });
    assert_eq!(counts(&crm.facets.tag), [("crm".into(), 3), ("core".into(), 2)]);
    assert_eq!(counts(&crm.facets.domain), [("marketing".into(), 2), ("sales".into(), 1)]);
}

#[tokio::test]
async fn pages_split_the_ranked_list() {
    let f = Fixture::new(catalog()).await;
    let admin = Principal::local_admin();
    let whole = f.search(&admin, &SearchRequest { limit: 100, ..SearchRequest::text("c") });
    assert_eq!(whole.total, whole.hits.len());
    let mut paged = Vec::new();
    for offset in (0..whole.total + 2).step_by(2) {
        let page = f.search(&admin, &SearchRequest { limit: 2, offset, ..SearchRequest::text("c") });
        assert_eq!(page.total, whole.total, "the total is across pages");
        assert!(page.hits.len() <= 2);
        paged.extend(ids(&page));
    }
    assert_eq!(paged, ids(&whole));
    assert_eq!(f.search(&admin, &SearchRequest { limit: 0, ..SearchRequest::text("c") }).hits.len(), 0);
}

#[test]
fn typo_distance_grows_with_the_word() {
    use super::terms::typo_distance;
    assert_eq!([3, 4, 7, 8, 20].map(typo_distance), [0, 1, 1, 2, 2]);
}

/// Scores come from each product alone: a product the searcher may not read, holding the same
/// word, moves neither the score nor the rank of the products it may read (catalog-wide
/// statistics would let a reader count hidden products by a word).
#[tokio::test]
async fn hidden_products_do_not_move_the_scores_of_readable_ones() {
    let with = Fixture::new(catalog()).await;
    let without = Fixture::new(catalog().into_iter().filter(|r| r.id.to_string() != "finance.ledger").collect()).await;
    let olga = member("olga", "marketing");
    for text in ["customer", "customers bought", "cust", "custmer"] {
        let scores = |fixture: &Fixture| {
            fixture.search(&olga, &SearchRequest::text(text)).hits.iter().map(|h| (h.record.id.to_string(), h.score.to_bits())).collect::<Vec<_>>()
        };
        let seen = scores(&with);
        assert!(!seen.iter().any(|(id, _)| id == "finance.ledger"), "{text}: {seen:?}");
        assert_eq!(seen, scores(&without), "{text}");
    }
}

/// `hr.salaries` may be discovered by everyone but read only by hr: its card is found by the
/// card's fields alone.
fn with_a_card() -> Vec<ProductRecord> {
    let mut records = catalog();
    records.push(product(
        "hr.salaries",
        "title: Salaries\ndescription: Pay per employee and month\nowner: group:hr\ntags: [payroll]\n\
         contract:\n  columns:\n    - { name: employee_email, type: string, classification: pii, description: Work address of the payee }\n    - { name: gross, type: double }\n\
         access:\n  readers: [\"domain:hr\"]\n  discoverable: true\n",
    ));
    records.sort_by(|a, b| a.id.cmp(&b.id));
    records
}

#[tokio::test]
async fn a_discoverable_product_is_found_as_its_card_by_its_card_fields_only() {
    let f = Fixture::new(with_a_card()).await;
    let ana = member("ana", "sales");
    let hana = member("hana", "hr");

    let found = f.search(&ana, &SearchRequest::text("salries"));
    assert_eq!(ids(&found), ["hr.salaries"], "a typo in the title finds the card");
    let hit = &found.hits[0];
    assert_eq!(hit.visibility, Visibility::Card);
    assert_eq!((hit.quality, hit.slo), (None, None), "a card carries no quality or SLO state");
    assert_eq!(hit.matched, [MatchedField::Name, MatchedField::Title]);
    assert_eq!(f.search(&hana, &SearchRequest::text("salaries")).hits[0].visibility, Visibility::Readable);
    assert_eq!(ids(&f.search(&ana, &SearchRequest::text("payroll employee"))), ["hr.salaries"], "tags and description are on the card");

    // Column names and their descriptions are not on the card: a search cannot probe them.
    for text in ["employee_email", "gross", "payee", "salaries gross"] {
        assert_eq!(ids(&f.search(&ana, &SearchRequest::text(text))), Vec::<String>::new(), "{text}");
        assert_eq!(ids(&f.search(&hana, &SearchRequest::text(text))), ["hr.salaries"], "{text}");
    }
    // The card's score is what its card fields are worth: the same as a reader's score of the
    // product without a contract would be.
    let bare = Fixture::new(
        with_a_card()
            .into_iter()
            .map(|mut r| {
                if r.id.to_string() == "hr.salaries" {
                    r.descriptor.contract.columns.retain(|_| false);
                }
                r
            })
            .collect(),
    )
    .await;
    for text in ["salaries", "pay", "employee month", "hr"] {
        let card = f.search(&ana, &SearchRequest::text(text)).hits.into_iter().find(|h| h.record.id.to_string() == "hr.salaries").unwrap();
        let read = bare.search(&hana, &SearchRequest::text(text)).hits.into_iter().find(|h| h.record.id.to_string() == "hr.salaries").unwrap();
        assert_eq!(card.score.to_bits(), read.score.to_bits(), "{text}");
    }

    // Counted in the facets a card shows, never in the others; filtering on those leaves it out.
    let all = f.search(&ana, &SearchRequest::default());
    assert_eq!(all.total, 5);
    assert!(counts(&all.facets.domain).contains(&("hr".into(), 1)), "{:?}", all.facets.domain);
    assert!(counts(&all.facets.tag).contains(&("payroll".into(), 1)));
    assert_eq!(counts(&all.facets.status), [("active".into(), 3), ("draft".into(), 1), ("sunset".into(), 1)]);
    assert_eq!(counts(&all.facets.classification), [("public".into(), 1), ("confidential".into(), 1), ("pii".into(), 1)], "the card's pii column is not counted");
    assert_eq!(counts(&all.facets.quality), [("none".into(), 2), ("passed".into(), 1), ("failed".into(), 1)]);
    assert_eq!(counts(&all.facets.slo), [("unknown".into(), 2), ("met".into(), 1), ("breached".into(), 1)]);
    let filtered = |filters: FacetFilters| ids(&f.search(&ana, &SearchRequest { filters, ..SearchRequest::default() }));
    assert_eq!(filtered(FacetFilters { classification: vec![Classification::Pii], ..Default::default() }), ["sales.customers"]);
    assert_eq!(filtered(FacetFilters { quality: vec![QualityState::None], ..Default::default() }), ["marketing.campaigns", "marketing.segments"]);
    assert_eq!(filtered(FacetFilters { slo: vec![SloState::Unknown], ..Default::default() }), ["marketing.campaigns", "marketing.segments"]);
    assert_eq!(filtered(FacetFilters { domain: vec!["hr".into()], ..Default::default() }), ["hr.salaries"]);
    let pii = f.search(&ana, &SearchRequest { filters: FacetFilters { classification: vec![Classification::Pii], ..Default::default() }, ..SearchRequest::default() });
    assert_eq!(counts(&pii.facets.domain), [("sales".into(), 1)], "other facets count no card while a card-less facet is filtered");

    // Asked for readable products only, the card is not listed.
    let readable = f.search(&ana, &SearchRequest { cards: false, ..SearchRequest::text("salaries") });
    assert_eq!((readable.total, readable.hits.len()), (0, 0));
    assert!(readable.facets.domain.is_empty());
    // A product that is not discoverable stays hidden (fay reads the ledger; ana does not).
    assert_eq!(ids(&f.search(&ana, &SearchRequest::text("ledger"))), Vec::<String>::new());
}

/// A card shows the declared status: searching by `sunset` cannot tell a card-only principal
/// whether a deprecated product's sunset date (not on its card) has passed.
#[tokio::test]
async fn a_card_shows_its_declared_status_not_whether_its_sunset_passed() {
    let mut records = catalog();
    records.push(product(
        "hr.payroll_v1",
        "title: Old payroll\nstatus: deprecated\nsunset: 2026-01-01\ncontract:\n  columns:\n    - { name: gross, type: double }\n\
         access:\n  readers: [\"domain:hr\"]\n  discoverable: true\n",
    ));
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let f = Fixture::new(records).await;
    let (ana, hana) = (member("ana", "sales"), member("hana", "hr"));
    let status_of = |results: &SearchResults| results.hits.iter().find(|h| h.record.id.to_string() == "hr.payroll_v1").map(|h| h.status);
    assert_eq!(status_of(&f.search(&ana, &SearchRequest::text("payroll"))), Some(ProductState::Deprecated));
    assert_eq!(status_of(&f.search(&hana, &SearchRequest::text("payroll"))), Some(ProductState::Sunset));
    let with_status = |state: ProductState| SearchRequest { filters: FacetFilters { status: vec![state], ..Default::default() }, ..SearchRequest::text("payroll") };
    assert_eq!(ids(&f.search(&ana, &with_status(ProductState::Sunset))), Vec::<String>::new());
    assert_eq!(ids(&f.search(&ana, &with_status(ProductState::Deprecated))), ["hr.payroll_v1"]);
    let counted = f.search(&ana, &SearchRequest::text("payroll"));
    assert_eq!(counts(&counted.facets.status), [("deprecated".into(), 1)]);
    assert_eq!(ids(&f.search(&hana, &with_status(ProductState::Sunset))), ["hr.payroll_v1"]);
}
