//! OpenLineage run events of product builds (spec 2-0-2): the typed wire model and the one place
//! that builds START, COMPLETE and FAIL events from a descriptor, its column lineage and its
//! quality results.
//!
//! Everything here is pure: the pipeline supplies the run id, the time and the results, stores
//! the events in the catalog's outbox, and the delivery to sinks happens elsewhere. Keeping the
//! mapping in one module keeps the names stable: a product is always the dataset
//! `<namespace>/<domain>.<product>` and the job that builds it `<namespace>/<domain>.<product>`,
//! a file input the dataset `file/<absolute path or glob>`, whichever trigger started the build.
//!
//! Facet versions are pinned by their `_schemaURL`s below; the vendored schemas in the pipeline's
//! tests (`crates/pipeline/tests/openlineage-spec/`) are the same versions, and the test
//! checks every emitted facet against the schema its `_schemaURL` names.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::descriptor::{InputSource, ProductDescriptor, QualityCheck};
use crate::id::ProductId;
use crate::lineage::{Derivation, ProductLineage};

/// The `schemaURL` of every event: a `RunEvent` of spec 2-0-2.
pub const RUN_EVENT_SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// The `_schemaURL` of the schema facet.
pub const SCHEMA_FACET_URL: &str = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
/// The `_schemaURL` of the column lineage facet.
pub const COLUMN_LINEAGE_FACET_URL: &str = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";
/// The `_schemaURL` of the data quality assertions facet.
pub const DATA_QUALITY_ASSERTIONS_FACET_URL: &str =
    "https://openlineage.io/spec/facets/1-1-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet";
/// The `_schemaURL` of the error message facet.
pub const ERROR_MESSAGE_FACET_URL: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
/// The `producer` of events and `_producer` of facets: this build of Meshwork, as a URI.
pub const PRODUCER: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/tree/v", env!("CARGO_PKG_VERSION"));
/// The namespace of file inputs, as the OpenLineage naming conventions write local files.
pub const FILE_NAMESPACE: &str = "file";

/// The transition a run event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// The build starts.
    Start,
    /// The build published a new version.
    Complete,
    /// The build failed or its data failed an `error` quality rule; nothing was published.
    Fail,
}

/// A run id: a UUID (version 7, so ids sort by start time).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// The UUIDv7 of `unix_ms` with `random` filling the random bits (RFC 9562 §5.7).
    pub fn v7(unix_ms: u64, random: u128) -> RunId {
        let value = (u128::from(unix_ms & 0xFFFF_FFFF_FFFF) << 80)
            | (0x7 << 76)
            | (((random >> 62) & 0xFFF) << 64)
            | (0b10 << 62)
            | (random & 0x3FFF_FFFF_FFFF_FFFF);
        let hex = format!("{value:032x}");
        RunId(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
    }

    /// The UUID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An OpenLineage `RunEvent`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// START, COMPLETE or FAIL.
    pub event_type: EventType,
    /// When the transition happened.
    pub event_time: DateTime<Utc>,
    /// The run.
    pub run: Run,
    /// The job: building one product.
    pub job: Job,
    /// The product's inputs: upstream products and file inputs.
    pub inputs: Vec<Dataset>,
    /// The product.
    pub outputs: Vec<Dataset>,
    /// [`PRODUCER`].
    pub producer: String,
    /// [`RUN_EVENT_SCHEMA_URL`].
    #[serde(rename = "schemaURL")]
    pub schema_url: String,
}

/// The run of an event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// Shared by the START and the COMPLETE or FAIL of one build.
    pub run_id: RunId,
    /// Run facets.
    #[serde(default)]
    pub facets: RunFacets,
}

/// The run facets Meshwork sends.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFacets {
    /// Why a FAIL failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<ErrorMessageRunFacet>,
}

/// The job of an event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// The mesh's namespace.
    pub namespace: String,
    /// `<domain>.<product>`.
    pub name: String,
}

/// An input or output dataset.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dataset {
    /// The mesh's namespace for products, [`FILE_NAMESPACE`] for files.
    pub namespace: String,
    /// `<domain>.<product>`, or a file's absolute path or glob.
    pub name: String,
    /// Dataset facets (outputs only).
    #[serde(default, skip_serializing_if = "DatasetFacets::is_empty")]
    pub facets: DatasetFacets,
}

/// The dataset facets Meshwork sends on the product it builds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetFacets {
    /// The contract's columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaDatasetFacet>,
    /// Where each column comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_lineage: Option<ColumnLineageDatasetFacet>,
    /// The quality rules evaluated on the staged data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_quality_assertions: Option<DataQualityAssertionsDatasetFacet>,
}

impl DatasetFacets {
    /// Whether no facet is set.
    pub fn is_empty(&self) -> bool {
        self.schema.is_none() && self.column_lineage.is_none() && self.data_quality_assertions.is_none()
    }
}

/// The fields every facet carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FacetBase {
    /// [`PRODUCER`].
    #[serde(rename = "_producer")]
    pub producer: String,
    /// The facet's schema, e.g. [`SCHEMA_FACET_URL`].
    #[serde(rename = "_schemaURL")]
    pub schema_url: String,
}

impl FacetBase {
    fn new(schema_url: &str) -> FacetBase {
        FacetBase { producer: PRODUCER.to_owned(), schema_url: schema_url.to_owned() }
    }
}

/// `SchemaDatasetFacet` 1-2-0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaDatasetFacet {
    /// Producer and schema.
    #[serde(flatten)]
    pub base: FacetBase,
    /// The columns in contract order.
    pub fields: Vec<SchemaField>,
}

/// One column of a [`SchemaDatasetFacet`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchemaField {
    /// Column name.
    pub name: String,
    /// The contract type as written in `product.yaml` (`string`, `decimal(10,2)`, …).
    #[serde(rename = "type")]
    pub data_type: String,
    /// The column's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 1-based position in the contract.
    pub ordinal_position: u32,
}

/// `ColumnLineageDatasetFacet` 1-2-0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnLineageDatasetFacet {
    /// Producer and schema.
    #[serde(flatten)]
    pub base: FacetBase,
    /// Output column → the input columns it depends on.
    pub fields: BTreeMap<String, ColumnLineageField>,
}

/// The sources of one output column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnLineageField {
    /// The input columns.
    pub input_fields: Vec<InputField>,
}

/// One input column of a [`ColumnLineageField`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputField {
    /// The input dataset's namespace.
    pub namespace: String,
    /// The input dataset's name.
    pub name: String,
    /// The input column.
    pub field: String,
    /// How the output column depends on it (one entry: Meshwork keeps the most direct way).
    pub transformations: Vec<Transformation>,
}

/// How an output column depends on an input column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transformation {
    /// `DIRECT` (the value is computed from it) or `INDIRECT` (it decides rows or order).
    #[serde(rename = "type")]
    pub kind: String,
    /// `IDENTITY`, `TRANSFORMATION` or `AGGREGATION` for direct ones; none for indirect ones,
    /// which Meshwork does not tell apart (filter, join, grouping, sorting, window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// Meshwork's own word for it (`copied`, `computed`, `aggregated`, `condition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the output hides the input value (a count, a length, a comparison).
    pub masking: bool,
}

/// `DataQualityAssertionsDatasetFacet` 1-1-0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DataQualityAssertionsDatasetFacet {
    /// Producer and schema.
    #[serde(flatten)]
    pub base: FacetBase,
    /// One per quality rule, in declaration order.
    pub assertions: Vec<Assertion>,
}

/// One quality rule's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assertion {
    /// The rule keyword (`not_null`, `unique`, `row_count`, …).
    pub assertion: String,
    /// Whether no row broke it.
    pub success: bool,
    /// The column it checks, when it checks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `error` or `warn`.
    pub severity: String,
    /// The rule's name in `product.yaml`.
    pub name: String,
    /// What was measured, in words (never row values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `ErrorMessageRunFacet` 1-0-1.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorMessageRunFacet {
    /// Producer and schema.
    #[serde(flatten)]
    pub base: FacetBase,
    /// The error, as the apply report shows it.
    pub message: String,
    /// `rust`.
    pub programming_language: String,
}

/// The outcome of one quality rule, as the pipeline measured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    /// The rule's name in `product.yaml`.
    pub name: String,
    /// Whether it passed (a rule that could not be evaluated did not).
    pub success: bool,
    /// What was measured, in words.
    pub message: String,
}

/// How a mesh names its jobs and datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The namespace of jobs and product datasets (`openlineage.namespace`, else the mesh's
    /// name).
    pub namespace: String,
    /// The repository's absolute root, which file inputs are relative to.
    pub root: String,
    /// `mesh.yaml`'s connections, which database inputs name.
    pub connections: std::collections::BTreeMap<String, crate::descriptor::Connection>,
    /// `mesh.yaml`'s Flight SQL endpoints, which virtual products' inputs name.
    pub endpoints: std::collections::BTreeMap<String, crate::descriptor::FlightEndpoint>,
}

impl Naming {
    /// The dataset of product `id`.
    pub fn product(&self, id: &ProductId) -> Dataset {
        Dataset { namespace: self.namespace.clone(), name: id.to_string(), facets: DatasetFacets::default() }
    }

    /// The dataset an input reads: the upstream product, or the file path or glob made absolute.
    pub fn input(&self, source: &InputSource) -> Dataset {
        if let Some((kind, db)) = source.database() {
            return self.database(kind, db);
        }
        match source {
            InputSource::Product { product } => self.product(product),
            // Another Meshwork's product by its endpoint (`grpc://HOST:PORT`) and its name there.
            InputSource::FlightSql(db) => Dataset {
                namespace: self.endpoints.get(&db.connection).map(|e| e.url.clone()).unwrap_or_else(|| db.connection.clone()),
                name: match &db.read {
                    crate::descriptor::DatabaseRead::Table(table) => table.clone(),
                    crate::descriptor::DatabaseRead::Query(_) => "query".to_owned(),
                },
                facets: DatasetFacets::default(),
            },
            other => {
                let path = other.path().unwrap_or_default();
                let name = if path.starts_with('/') {
                    path.to_owned()
                } else {
                    format!("{}/{}", self.root.trim_end_matches('/'), path.trim_start_matches("./"))
                };
                Dataset { namespace: FILE_NAMESPACE.to_owned(), name, facets: DatasetFacets::default() }
            }
        }
    }

    /// A database table as OpenLineage's naming conventions name it: namespace
    /// `postgres://HOST:PORT` with name `DATABASE.SCHEMA.TABLE`, or `mysql://HOST:PORT` with
    /// `DATABASE.TABLE`; a query is named by its database alone.
    fn database(&self, kind: crate::descriptor::DatabaseKind, db: &crate::descriptor::DatabaseSource) -> Dataset {
        use crate::descriptor::{DatabaseKind, DatabaseRead};
        let url = self.connections.get(&db.connection).map(|c| c.url.as_str()).unwrap_or_default();
        let rest = url.split_once("://").map_or("", |(_, rest)| rest);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority.rsplit('@').next().unwrap_or_default();
        let default_port = match kind {
            DatabaseKind::Postgres => 5432,
            DatabaseKind::Mysql => 3306,
        };
        let host_port = if host_port.rsplit_once(':').is_some_and(|(_, port)| port.chars().all(|c| c.is_ascii_digit())) {
            host_port.to_owned()
        } else {
            format!("{host_port}:{default_port}")
        };
        let database = rest.split_once('/').map(|(_, path)| path.split('?').next().unwrap_or_default()).unwrap_or_default();
        let name = match (&db.read, kind) {
            (DatabaseRead::Table(table), DatabaseKind::Postgres) if table.contains('.') => format!("{database}.{table}"),
            (DatabaseRead::Table(table), DatabaseKind::Postgres) => format!("{database}.public.{table}"),
            (DatabaseRead::Table(table), DatabaseKind::Mysql) if table.contains('.') => table.clone(),
            (DatabaseRead::Table(table), DatabaseKind::Mysql) => format!("{database}.{table}"),
            (DatabaseRead::Query(_), _) => database.to_owned(),
        };
        Dataset { namespace: format!("{kind}://{host_port}"), name, facets: DatasetFacets::default() }
    }

    /// The job that builds product `id`.
    pub fn job(&self, id: &ProductId) -> Job {
        Job { namespace: self.namespace.clone(), name: id.to_string() }
    }
}

/// The START of a build of `descriptor`: its inputs, and the product with its declared schema.
pub fn start_event(naming: &Naming, descriptor: &ProductDescriptor, run_id: &RunId, at: DateTime<Utc>) -> RunEvent {
    let output = output(naming, descriptor, DatasetFacets { schema: Some(schema_facet(descriptor)), ..DatasetFacets::default() });
    event(naming, descriptor, EventType::Start, run_id, at, RunFacets::default(), output)
}

/// The COMPLETE of a build that published a new version: the product with its schema, its
/// column lineage and the quality rules its staged data passed.
pub fn complete_event(
    naming: &Naming,
    descriptor: &ProductDescriptor,
    run_id: &RunId,
    at: DateTime<Utc>,
    lineage: &ProductLineage,
    quality: &[RuleOutcome],
) -> RunEvent {
    let facets = DatasetFacets {
        schema: Some(schema_facet(descriptor)),
        column_lineage: Some(column_lineage_facet(naming, descriptor, lineage)),
        data_quality_assertions: assertions_facet(descriptor, quality),
    };
    event(naming, descriptor, EventType::Complete, run_id, at, RunFacets::default(), output(naming, descriptor, facets))
}

/// The FAIL of a build: the error, and, when its staged data failed a quality rule, every rule's
/// result on the product.
pub fn fail_event(
    naming: &Naming,
    descriptor: &ProductDescriptor,
    run_id: &RunId,
    at: DateTime<Utc>,
    message: &str,
    quality: &[RuleOutcome],
) -> RunEvent {
    let facets = DatasetFacets {
        schema: Some(schema_facet(descriptor)),
        data_quality_assertions: assertions_facet(descriptor, quality),
        ..DatasetFacets::default()
    };
    let run_facets = RunFacets {
        error_message: Some(ErrorMessageRunFacet {
            base: FacetBase::new(ERROR_MESSAGE_FACET_URL),
            message: message.to_owned(),
            programming_language: "rust".into(),
        }),
    };
    event(naming, descriptor, EventType::Fail, run_id, at, run_facets, output(naming, descriptor, facets))
}

fn event(
    naming: &Naming,
    descriptor: &ProductDescriptor,
    event_type: EventType,
    run_id: &RunId,
    at: DateTime<Utc>,
    facets: RunFacets,
    output: Dataset,
) -> RunEvent {
    let id = descriptor.id();
    let mut inputs: Vec<Dataset> = Vec::new();
    for port in &descriptor.inputs {
        let dataset = naming.input(&port.source);
        if !inputs.iter().any(|d| d.namespace == dataset.namespace && d.name == dataset.name) {
            inputs.push(dataset);
        }
    }
    RunEvent {
        event_type,
        event_time: at,
        run: Run { run_id: run_id.clone(), facets },
        job: naming.job(&id),
        inputs,
        outputs: vec![output],
        producer: PRODUCER.to_owned(),
        schema_url: RUN_EVENT_SCHEMA_URL.to_owned(),
    }
}

fn output(naming: &Naming, descriptor: &ProductDescriptor, facets: DatasetFacets) -> Dataset {
    Dataset { facets, ..naming.product(&descriptor.id()) }
}

fn schema_facet(descriptor: &ProductDescriptor) -> SchemaDatasetFacet {
    SchemaDatasetFacet {
        base: FacetBase::new(SCHEMA_FACET_URL),
        fields: descriptor
            .contract
            .columns
            .iter()
            .zip(1..)
            .map(|(c, position)| SchemaField { name: c.name.clone(), data_type: c.data_type.to_string(), description: c.description.clone(), ordinal_position: position })
            .collect(),
    }
}

fn column_lineage_facet(naming: &Naming, descriptor: &ProductDescriptor, lineage: &ProductLineage) -> ColumnLineageDatasetFacet {
    let mut fields = BTreeMap::new();
    for column in &lineage.columns {
        let input_fields = column
            .sources
            .iter()
            .filter_map(|source| {
                let dataset = match &source.product {
                    Some(product) => naming.product(product),
                    None => naming.input(&descriptor.inputs.iter().find(|port| port.name == source.input)?.source),
                };
                Some(InputField {
                    namespace: dataset.namespace,
                    name: dataset.name,
                    field: source.column.clone(),
                    transformations: vec![transformation(source.derivation, source.carries_value)],
                })
            })
            .collect();
        fields.insert(column.name.clone(), ColumnLineageField { input_fields });
    }
    ColumnLineageDatasetFacet { base: FacetBase::new(COLUMN_LINEAGE_FACET_URL), fields }
}

/// Meshwork's derivation in OpenLineage's words: copies are `DIRECT/IDENTITY`, row-level
/// expressions `DIRECT/TRANSFORMATION`, aggregates and windows `DIRECT/AGGREGATION`, and
/// conditions `INDIRECT` without a subtype (Meshwork keeps one kind for filters, joins, grouping,
/// sorting and partitioning). A source whose value does not reach the output is masking.
pub fn transformation(derivation: Derivation, carries_value: bool) -> Transformation {
    let (kind, subtype) = match derivation {
        Derivation::Copied => ("DIRECT", Some("IDENTITY")),
        Derivation::Computed => ("DIRECT", Some("TRANSFORMATION")),
        Derivation::Aggregated => ("DIRECT", Some("AGGREGATION")),
        Derivation::Condition => ("INDIRECT", None),
    };
    Transformation {
        kind: kind.to_owned(),
        subtype: subtype.map(str::to_owned),
        description: Some(derivation.as_str().to_owned()),
        masking: derivation != Derivation::Condition && !carries_value,
    }
}

fn assertions_facet(descriptor: &ProductDescriptor, quality: &[RuleOutcome]) -> Option<DataQualityAssertionsDatasetFacet> {
    if quality.is_empty() {
        return None;
    }
    let assertions = quality
        .iter()
        .map(|outcome| {
            let rule = descriptor.quality.iter().find(|r| r.name == outcome.name);
            Assertion {
                assertion: rule.map(|r| r.check.keyword()).unwrap_or("sql").to_owned(),
                success: outcome.success,
                column: rule.and_then(|r| checked_column(&r.check)).map(str::to_owned),
                severity: rule.map(|r| r.severity.as_str()).unwrap_or("error").to_owned(),
                name: outcome.name.clone(),
                description: Some(outcome.message.clone()).filter(|m| !m.is_empty()),
            }
        })
        .collect();
    Some(DataQualityAssertionsDatasetFacet { base: FacetBase::new(DATA_QUALITY_ASSERTIONS_FACET_URL), assertions })
}

/// The one column a rule checks; `None` for rules on the whole dataset or on several columns.
fn checked_column(check: &QualityCheck) -> Option<&str> {
    match check {
        QualityCheck::NotNull { column }
        | QualityCheck::AcceptedValues { column, .. }
        | QualityCheck::Range { column, .. }
        | QualityCheck::Regex { column, .. }
        | QualityCheck::Freshness { column, .. }
        | QualityCheck::Referential { column, .. } => Some(column.as_str()),
        QualityCheck::Unique { columns } if columns.len() == 1 => Some(columns[0].as_str()),
        QualityCheck::Unique { .. } | QualityCheck::RowCount { .. } | QualityCheck::Sql { .. } => None,
    }
}
