//! The typed model of a mesh repository: `mesh.yaml`, `domain.yaml` and `product.yaml`.
//!
//! Fields that later capabilities act on (quality, SLOs, refresh, access, output ports) are parsed
//! and validated here already, so a descriptor that is accepted today stays accepted tomorrow.

use std::collections::BTreeMap;

use crate::column_type::ColumnType;
use crate::id::{DomainName, ProductId, ProductName};

/// `mesh.yaml`: settings of the whole installation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MeshConfig {
    /// Name of the mesh, shown in listings.
    pub name: String,
    /// What this mesh is for.
    pub description: Option<String>,
    /// Where product tables live: a local directory unless `storage:` names object storage.
    pub storage: StorageLocation,
    /// Where the catalog lives: the embedded SQLite file unless `metadata:` says otherwise.
    pub metadata: MetadataStore,
    /// Network servers of `meshwork serve`.
    pub server: ServerConfig,
    /// How servers authenticate callers besides API tokens.
    pub auth: AuthConfig,
    /// Background work of `meshwork serve`: refreshes and SLO evaluation.
    pub scheduler: SchedulerConfig,
    /// Where lifecycle events are delivered.
    pub notifications: Notifications,
    /// Where OpenLineage run events of builds are sent; `None`: none are emitted.
    pub openlineage: Option<OpenLineageConfig>,
    /// State of each governance or access policy by name.
    pub policies: BTreeMap<String, PolicyState>,
    /// Operational databases products read from, by name.
    pub connections: BTreeMap<String, Connection>,
    /// Flight SQL endpoints (other Meshworks) virtual products are served from, by name; declared
    /// under `connections:` with a `grpc://` URL.
    #[serde(default)]
    pub flight_endpoints: BTreeMap<String, FlightEndpoint>,
    /// The Apache Ballista cluster queries may run on; `None`: every query runs in-process.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
}

/// `cluster:` in `mesh.yaml`: a Ballista scheduler that runs the queries this mesh's servers
/// and commands plan, after Meshwork has decided access and put its policy fences in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterConfig {
    /// The scheduler's gRPC address, `HOST:PORT`.
    pub scheduler: String,
    /// Which queries run on the cluster.
    pub run: ClusterRun,
}

/// `cluster.run`: which queries leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRun {
    /// Every query whose plan can run there (`run: all`).
    All,
    /// Queries whose product files add up to at least `min_scan_bytes` (`min_scan: 1GiB`).
    Large {
        /// The scan size from which a query runs on the cluster.
        min_scan_bytes: u64,
    },
}

impl ClusterRun {
    /// The scan size from which queries run on the cluster when `mesh.yaml` names none.
    pub const DEFAULT_MIN_SCAN_BYTES: u64 = 1 << 30;
}

/// A Flight SQL endpoint under `connections:` (`url: grpc://HOST:PORT`): another Meshwork, or any
/// Flight SQL server, queried with a bearer token read from `token_env`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FlightEndpoint {
    /// `grpc://HOST:PORT`.
    pub url: String,
    /// The environment variable holding the bearer token (an API token of the other Meshwork).
    pub token_env: Option<String>,
}

/// `metadata:` in `mesh.yaml`: where the catalog lives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetadataStore {
    /// A SQLite file, relative to the mesh repository unless absolute (`sqlite:PATH`).
    Sqlite {
        /// The file.
        path: String,
    },
    /// A PostgreSQL database (`postgres://user@host:port/database`).
    Postgres {
        /// The URL, which never holds the password.
        url: String,
        /// The environment variable holding the password, if the server wants one.
        password_env: Option<String>,
    },
}

/// The embedded catalog file, relative to the mesh repository.
pub const DEFAULT_CATALOG_PATH: &str = ".meshwork/catalog.db";

impl Default for MetadataStore {
    fn default() -> Self {
        MetadataStore::Sqlite { path: DEFAULT_CATALOG_PATH.into() }
    }
}

/// The default data directory, relative to the mesh repository.
pub const DEFAULT_DATA_DIR: &str = ".meshwork/data";

/// `storage:` in `mesh.yaml`: where product tables and staged runs live.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StorageLocation {
    /// A local directory, relative to the mesh repository unless absolute.
    Local {
        /// The directory.
        data_dir: String,
    },
    /// An S3-compatible bucket (`s3://bucket/prefix`). Credentials never sit here: they come
    /// from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …).
    S3(S3Location),
}

impl Default for StorageLocation {
    fn default() -> Self {
        StorageLocation::Local { data_dir: DEFAULT_DATA_DIR.into() }
    }
}

/// An S3-compatible storage location.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix under which the mesh's tables live, without leading or trailing `/`
    /// (empty: the bucket's root).
    pub prefix: String,
    /// The endpoint of an S3-compatible server (MinIO, Ceph, R2…); `None`: AWS, or
    /// `AWS_ENDPOINT_URL` when set.
    pub endpoint: Option<String>,
    /// The region; `None`: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Whether a plain-`http://` endpoint is accepted (test servers, a private network); `None`:
    /// as `AWS_ALLOW_HTTP` says, else no.
    pub allow_http: Option<bool>,
}

impl S3Location {
    /// `s3://bucket/prefix` (or `s3://bucket` at the bucket's root).
    pub fn url(&self) -> String {
        if self.prefix.is_empty() { format!("s3://{}", self.bucket) } else { format!("s3://{}/{}", self.bucket, self.prefix) }
    }
}

impl std::fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageLocation::Local { data_dir } => f.write_str(data_dir),
            StorageLocation::S3(s3) => f.write_str(&s3.url()),
        }
    }
}

/// Bind address and ports of `meshwork serve`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerConfig {
    /// Address every server binds to.
    pub bind: String,
    /// HTTP API and portal port.
    pub http_port: u16,
    /// Arrow Flight SQL port.
    pub flight_sql_port: u16,
    /// PostgreSQL wire protocol port.
    pub postgres_port: u16,
    /// Memory one query may use, in bytes; a query needing more fails with a resource error.
    pub query_memory_bytes: u64,
    /// Wall time one query may take.
    pub query_timeout: DurationSpec,
    /// Queries one principal may run at once over all interfaces; more are refused.
    pub max_queries_per_principal: u32,
    /// How long a portal sign-in lasts.
    pub session_ttl: DurationSpec,
    /// The address users reach the HTTP server at, when a proxy is in front (e.g.
    /// `https://mesh.example.com`): `https` makes portal cookies `Secure`; the OIDC sign-in
    /// returns there.
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1".into(),
            http_port: 8080,
            flight_sql_port: 50051,
            postgres_port: 5433,
            query_memory_bytes: 1 << 30,
            query_timeout: DurationSpec { seconds: 300 },
            max_queries_per_principal: 8,
            session_ttl: DurationSpec { seconds: 8 * 3600 },
            public_url: None,
        }
    }
}

/// `scheduler:` in `mesh.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SchedulerConfig {
    /// Whether `meshwork serve` runs cron and upstream-change refreshes.
    pub enabled: bool,
    /// How often SLOs are evaluated.
    pub slo_interval: DurationSpec,
    /// How many times a failed refresh is retried.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: DurationSpec,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig { enabled: true, slo_interval: DurationSpec { seconds: 60 }, retries: 3, retry_backoff: DurationSpec { seconds: 30 } }
    }
}

/// `notifications:` in `mesh.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notifications {
    /// HTTP endpoints that receive lifecycle events.
    pub webhooks: Vec<Webhook>,
}

/// One webhook: events are POSTed as JSON, signed with HMAC-SHA256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Webhook {
    /// Name, unique in the mesh; keys the delivery cursor.
    pub name: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// Environment variable holding the signing secret (secrets stay out of the repository).
    pub secret_env: String,
    /// Event kinds delivered; empty means all.
    pub events: Vec<crate::event::EventKind>,
}

/// `openlineage:` in `mesh.yaml`: every build emits OpenLineage run events to these sinks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenLineageConfig {
    /// Namespace of the mesh's jobs and product datasets; defaults to the mesh's name.
    pub namespace: String,
    /// Where events go; at least one.
    pub sinks: Vec<LineageSink>,
}

/// One OpenLineage sink.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineageSink {
    /// Name, unique in the mesh; keys the delivery cursor.
    pub name: String,
    /// Where it writes.
    pub target: LineageTarget,
}

/// Where an OpenLineage sink writes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LineageTarget {
    /// Appends one event per line (NDJSON) to a file, relative to the mesh repository unless
    /// absolute.
    File {
        /// The file.
        path: String,
    },
    /// POSTs each event as JSON (the OpenLineage HTTP transport, e.g. Marquez).
    Http {
        /// The full address events are posted to: `url` joined with `endpoint`
        /// (`api/v1/lineage` unless set).
        url: String,
        /// Environment variable holding an API key sent as `Authorization: Bearer …`.
        api_key_env: Option<String>,
    },
}

/// The endpoint OpenLineage's HTTP transport posts to under its `url` (Marquez's).
pub const DEFAULT_LINEAGE_ENDPOINT: &str = "api/v1/lineage";

/// `auth:` in `mesh.yaml`. API tokens (`meshwork token create`) always work; OIDC is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthConfig {
    /// Bearer JWTs from an OpenID Connect provider.
    pub oidc: Option<OidcConfig>,
}

/// Validation of OIDC/JWT bearer tokens and how their claims map to a principal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OidcConfig {
    /// Required `iss` claim.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Where the signing keys are: a JWKS file (relative to the repository) or an `https://` URL.
    pub jwks: String,
    /// Accepted signing algorithms, e.g. `RS256`, `ES256`, `EdDSA`.
    pub algorithms: Vec<String>,
    /// Claim holding the principal name.
    pub principal_claim: String,
    /// Claim holding the principal's groups (a list or a space-separated string).
    pub groups_claim: String,
    /// Principal attribute name → claim name, e.g. `region: region`.
    pub attributes: BTreeMap<String, String>,
    /// The portal's client id at the provider: with it, the portal offers the OIDC
    /// authorization-code sign-in (ID tokens must name it as audience).
    pub client_id: Option<String>,
    /// The environment variable holding the portal's client secret, if the provider issued one.
    pub client_secret_env: Option<String>,
}

/// Signing algorithms accepted for OIDC tokens unless `auth.oidc.algorithms` says otherwise.
pub const DEFAULT_JWT_ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];
/// Every algorithm name `auth.oidc.algorithms` accepts; symmetric ones are refused because a
/// JWKS publishes public keys.
pub const JWT_ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

crate::keyword_enum! {
    /// Rollout state of a policy: staged from `off` to `warn` to `enforce`; ordered by strictness.
    pub enum PolicyState ("policy state") {
        /// Not evaluated.
        Off => "off",
        /// Evaluated; violations are reported but do not block.
        Warn => "warn",
        /// Evaluated; violations block.
        Enforce => "enforce",
    }
}

/// `domain.yaml`: a business area that owns products.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DomainDescriptor {
    /// The domain's name; also its directory name and SQL schema.
    pub name: DomainName,
    /// Human title.
    pub title: Option<String>,
    /// What the domain covers.
    pub description: Option<String>,
    /// Principals accountable for the domain (`user:…`, `group:…`).
    pub owners: Vec<String>,
    /// Principals that belong to the domain.
    pub members: Vec<String>,
    /// Policy states set by the domain: its own policies, or a global policy made stricter for
    /// the domain's products (never looser).
    pub policies: BTreeMap<String, PolicyState>,
    /// What the domain is, as a principal, when its products' builds and checks read other
    /// domains' products (`principal:` in `domain.yaml`).
    #[serde(default)]
    pub principal: DomainPrincipal,
}

/// The groups and attributes a domain holds as a principal (`domain.yaml` `principal:`), so an
/// upstream's access block and row filters can name it like any consumer: `group:…` readers,
/// `principal.attributes.region` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainPrincipal {
    /// Groups the domain is in, e.g. `analysts`.
    #[serde(default)]
    pub groups: std::collections::BTreeSet<String>,
    /// Attributes read by row filters, e.g. `region: EU`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// `product.yaml`: the descriptor of one data product.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProductDescriptor {
    /// Product name, unique in its domain.
    pub name: ProductName,
    /// Owning domain.
    pub domain: DomainName,
    /// Version of the product's contract as written; semantic versioning is a governance rule
    /// (`semver_version`), so a descriptor with a malformed version still parses and is reported
    /// by the policy with its position.
    pub version: String,
    /// Human title.
    pub title: Option<String>,
    /// What one row means and what the product is for.
    pub description: Option<String>,
    /// Accountable principal (`user:…` or `group:…`).
    pub owner: Option<String>,
    /// Free search tags.
    pub tags: Vec<String>,
    /// Lifecycle state.
    pub status: ProductStatus,
    /// When a deprecated product stops being served (ISO date).
    pub sunset: Option<chrono::NaiveDate>,
    /// The product consumers should move to.
    pub successor: Option<ProductId>,
    /// Where the data comes from.
    pub inputs: Vec<InputPort>,
    /// How the inputs become the product; `None` is identity over a single input.
    pub transform: Option<Transform>,
    /// The output schema the built data must conform to.
    pub contract: Contract,
    /// Quality rules checked on staged data.
    pub quality: Vec<QualityRule>,
    /// Service level objectives.
    pub slo: Option<Slo>,
    /// When the product is rebuilt.
    pub refresh: Refresh,
    /// Who may read and what they see.
    pub access: Option<Access>,
    /// Interfaces the product is served on.
    pub output_ports: OutputPorts,
    /// Whether the product is a copy in its own Delta table or served live from its database
    /// input (`virtual: true`). Left out of the serialized form when it is a copy, so the
    /// fingerprints of descriptors written before virtual products are unchanged.
    #[serde(default, skip_serializing_if = "Storage::is_copy")]
    pub storage: Storage,
}

/// What a virtual product is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote<'a> {
    /// A PostgreSQL or MySQL table or query.
    Database(DatabaseKind, &'a DatabaseSource),
    /// A Flight SQL endpoint's table or query.
    FlightSql(&'a DatabaseSource),
}

impl Remote<'_> {
    /// The connection's name and what is read of it.
    pub fn source(&self) -> &DatabaseSource {
        match self {
            Remote::Database(_, source) | Remote::FlightSql(source) => source,
        }
    }
}

/// Where a product's rows live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// Built into the product's own Delta table at each publication (the default).
    #[default]
    Copy,
    /// Read from the single database input when queried; nothing is copied.
    Virtual,
}

impl Storage {
    /// Whether rows are copied into the product's table.
    pub fn is_copy(&self) -> bool {
        *self == Storage::Copy
    }
}

impl ProductDescriptor {
    /// The database input a virtual product is served from: `None` for copied products.
    pub fn remote(&self) -> Option<(&InputPort, Remote<'_>)> {
        if self.storage != Storage::Virtual {
            return None;
        }
        let [input] = self.inputs.as_slice() else { return None };
        match &input.source {
            InputSource::FlightSql(source) => Some((input, Remote::FlightSql(source))),
            other => other.database().map(|(kind, source)| (input, Remote::Database(kind, source))),
        }
    }

    /// The product's address.
    pub fn id(&self) -> ProductId {
        ProductId::new(self.domain.clone(), self.name.clone())
    }

    /// Products this one reads, in input order.
    pub fn upstream(&self) -> impl Iterator<Item = &ProductId> {
        self.inputs.iter().filter_map(|input| match &input.source {
            InputSource::Product { product } => Some(product),
            _ => None,
        })
    }

    /// The descriptor as shown to someone who can see only the products `visible` accepts:
    /// input ports reading other products, `referential` rules and the successor are left out
    /// when they name a product that caller cannot see, so a detail never tells that a hidden
    /// product exists. Files and the product's own columns are kept.
    pub fn without_hidden_products(mut self, visible: impl Fn(&ProductId) -> bool) -> ProductDescriptor {
        self.inputs.retain(|input| match &input.source {
            InputSource::Product { product } => visible(product),
            _ => true,
        });
        self.quality.retain(|rule| match &rule.check {
            QualityCheck::Referential { references, .. } => visible(references),
            _ => true,
        });
        if self.successor.as_ref().is_some_and(|s| !visible(s)) {
            self.successor = None;
        }
        self
    }
}

crate::keyword_enum! {
    /// Lifecycle state of a product.
    pub enum ProductStatus ("product status") {
        /// Being built; not promised to consumers.
        Draft => "draft",
        /// Served and supported.
        Active => "active",
        /// Still served, with a sunset date and usually a successor.
        Deprecated => "deprecated",
    }
}

impl Classification {
    /// The keyword used in `product.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Pii => "pii",
        }
    }

    /// Every class, from the least to the most sensitive.
    pub const ALL: [Classification; 4] = [Classification::Public, Classification::Internal, Classification::Confidential, Classification::Pii];
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Classification {
    type Err = crate::keyword::UnknownKeyword;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Classification::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| crate::keyword::UnknownKeyword::new("classification", text, Classification::ALL.map(Classification::as_str)))
    }
}

/// A named input of a product; the transform sees it as a table of that name.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputPort {
    /// Table name inside the transform.
    pub name: String,
    /// Where the rows come from.
    pub source: InputSource,
}

/// Where an input port reads from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputSource {
    /// CSV files.
    Csv {
        /// Path or glob, relative to the mesh repository.
        path: String,
        /// Whether the first line holds column names.
        header: bool,
        /// Field separator, one ASCII character.
        delimiter: char,
        /// Cell texts read as NULL.
        null_values: Vec<String>,
    },
    /// Newline-delimited JSON files.
    Ndjson {
        /// Path or glob, relative to the mesh repository.
        path: String,
    },
    /// Parquet files.
    Parquet {
        /// Path or glob, relative to the mesh repository.
        path: String,
    },
    /// A table or query of a PostgreSQL database named in `connections:`.
    Postgres(DatabaseSource),
    /// A table or query of a MySQL or MariaDB database named in `connections:`.
    Mysql(DatabaseSource),
    /// A table (another Meshwork's `domain.product`) or query of a Flight SQL endpoint named in
    /// `connections:`; read live by a virtual product, never copied.
    FlightSql(DatabaseSource),
    /// The current published version of another product.
    Product {
        /// The upstream product.
        product: ProductId,
    },
}

impl InputSource {
    /// The file path or glob of a file source.
    pub fn path(&self) -> Option<&str> {
        match self {
            InputSource::Csv { path, .. } | InputSource::Ndjson { path } | InputSource::Parquet { path } => Some(path),
            InputSource::Postgres(_) | InputSource::Mysql(_) | InputSource::FlightSql(_) | InputSource::Product { .. } => None,
        }
    }

    /// The database and what is read of it, for a database source.
    pub fn database(&self) -> Option<(DatabaseKind, &DatabaseSource)> {
        match self {
            InputSource::Postgres(source) => Some((DatabaseKind::Postgres, source)),
            InputSource::Mysql(source) => Some((DatabaseKind::Mysql, source)),
            _ => None,
        }
    }
}

crate::keyword_enum! {
    /// The kind of an operational database.
    pub enum DatabaseKind ("database kind") {
        /// PostgreSQL.
        Postgres => "postgres",
        /// MySQL or MariaDB.
        Mysql => "mysql",
    }
}

/// What an input port reads of an operational database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatabaseSource {
    /// The connection's name in `mesh.yaml`'s `connections:`.
    pub connection: String,
    /// A table (`schema.table` or `table`) or a query.
    pub read: DatabaseRead,
    /// Incremental loads by a watermark column; `None`: every build reads everything.
    pub incremental: Option<Incremental>,
}

/// A table or a query.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseRead {
    /// A table or view, as `table` or `schema.table`.
    Table(String),
    /// A `SELECT` statement.
    Query(String),
}

/// Incremental loads: each build reads only the rows whose watermark column is past the
/// high-water mark the last publication recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Incremental {
    /// The source column that grows with every insert or update (a timestamp or a sequence).
    pub column: String,
    /// How the new rows join the product.
    pub mode: LoadMode,
}

crate::keyword_enum! {
    /// How the rows of an incremental load join the product.
    pub enum LoadMode ("load mode") {
        /// Added to the rows already published.
        Append => "append",
        /// Replace the published rows with the same primary key, others are added (a Delta MERGE).
        Merge => "merge",
    }
}

/// `connections:` in `mesh.yaml`: an operational database products read from. The password is
/// never in the file: it comes from the environment variable `password_env` names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Connection {
    /// PostgreSQL or MySQL, from the URL's scheme.
    pub kind: DatabaseKind,
    /// `postgres://USER@HOST:PORT/DATABASE` or `mysql://USER@HOST:PORT/DATABASE`, without a password.
    pub url: String,
    /// The environment variable holding the password, if the server wants one.
    pub password_env: Option<String>,
}

/// The SQL that turns input ports into the product.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transform {
    /// A `.sql` file relative to the product directory, if the SQL came from one.
    pub file: Option<String>,
    /// The SQL text (read from `file` by the loader when it came from one).
    pub sql: String,
}

/// The output schema of a product.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contract {
    /// Columns in output order.
    pub columns: Vec<Column>,
    /// Columns that identify a row.
    pub primary_key: Vec<String>,
}

impl Contract {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One column of a contract.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Logical type.
    #[serde(rename = "type")]
    pub data_type: ColumnType,
    /// Whether NULL is allowed (default true).
    pub nullable: bool,
    /// What the column means.
    pub description: Option<String>,
    /// Sensitivity class, if declared.
    pub classification: Option<Classification>,
}

/// Sensitivity class of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// May be shown to anyone.
    Public,
    /// For people inside the company.
    Internal,
    /// Business secret.
    Confidential,
    /// Personally identifiable information.
    Pii,
}

crate::keyword_enum! {
    /// How bad a failed quality rule is.
    pub enum Severity ("severity") {
        /// Blocks the publish.
        Error => "error",
        /// Reported only.
        Warn => "warn",
    }
}

/// A named quality rule with its severity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QualityRule {
    /// Name shown in reports; defaults to `<rule>_<column>`.
    pub name: String,
    /// Effect of a failure.
    pub severity: Severity,
    /// What is checked.
    pub check: QualityCheck,
}

/// What a quality rule checks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum QualityCheck {
    /// No NULL in `column`.
    NotNull {
        /// The column.
        column: String,
    },
    /// No two rows share the values of `columns`.
    Unique {
        /// One or several columns.
        columns: Vec<String>,
    },
    /// Every value of `column` is one of `values`.
    AcceptedValues {
        /// The column.
        column: String,
        /// Allowed values, as written.
        values: Vec<String>,
    },
    /// Values of `column` lie within bounds.
    Range {
        /// The column.
        column: String,
        /// Lower bound, as written.
        min: Option<String>,
        /// Upper bound, as written.
        max: Option<String>,
        /// Whether `min` itself is allowed (default true).
        min_inclusive: bool,
        /// Whether `max` itself is allowed (default true).
        max_inclusive: bool,
    },
    /// Values of `column` match a regular expression.
    Regex {
        /// The column.
        column: String,
        /// The pattern.
        pattern: String,
    },
    /// The row count lies within bounds, or within ±`max_change_pct` of the previous version.
    RowCount {
        /// Fewest rows.
        min: Option<u64>,
        /// Most rows.
        max: Option<u64>,
        /// Largest change against the previous version, in percent.
        max_change_pct: Option<f64>,
    },
    /// The newest value of a timestamp column is not older than `max_age`.
    Freshness {
        /// The timestamp column.
        column: String,
        /// Largest allowed age.
        max_age: DurationSpec,
    },
    /// Every value of `column` exists in `references_column` of product `references`.
    Referential {
        /// The column.
        column: String,
        /// The referenced product.
        references: ProductId,
        /// The referenced column.
        references_column: String,
    },
    /// A SQL query over `this` (and other products) that must return true.
    Sql {
        /// The assertion query.
        assert: String,
    },
}

impl QualityCheck {
    /// The rule's keyword in `product.yaml`.
    pub fn keyword(&self) -> &'static str {
        match self {
            QualityCheck::NotNull { .. } => "not_null",
            QualityCheck::Unique { .. } => "unique",
            QualityCheck::AcceptedValues { .. } => "accepted_values",
            QualityCheck::Range { .. } => "range",
            QualityCheck::Regex { .. } => "regex",
            QualityCheck::RowCount { .. } => "row_count",
            QualityCheck::Freshness { .. } => "freshness",
            QualityCheck::Referential { .. } => "referential",
            QualityCheck::Sql { .. } => "sql",
        }
    }
}

/// A duration written like `90s`, `15m`, `24h`, `7d` or `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DurationSpec {
    /// Length in seconds.
    pub seconds: u64,
}

/// As `product.yaml` would write it: `24h`, `90m`, `1d`.
impl std::fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::contract_diff::duration(self.seconds as f64))
    }
}

/// Service level objectives of a product.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Slo {
    /// Largest allowed age: of the last successful publish, or of the newest value of
    /// `freshness_column` when one is named.
    pub freshness: Option<DurationSpec>,
    /// Timestamp column whose newest value measures freshness (event time) instead of the
    /// publish time.
    pub freshness_column: Option<String>,
    /// Required share of non-null values of a column, or of rows against an upstream product.
    pub completeness: Option<Completeness>,
    /// Target share of successful queries of the product, in percent (e.g. 99.9).
    pub availability: Option<f64>,
    /// Share of evaluations in `window` that must meet the freshness and completeness
    /// objectives, in percent; what is left is the error budget.
    pub target: f64,
    /// The rolling window error budgets are computed over.
    pub window: DurationSpec,
}

/// Default `slo.target`: 99 % of evaluations meet their objective.
pub const DEFAULT_SLO_TARGET: f64 = 99.0;
/// Default `slo.window`: 30 days.
pub const DEFAULT_SLO_WINDOW: DurationSpec = DurationSpec { seconds: 30 * 86_400 };

/// A completeness objective: `min_ratio` of something must be there.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Completeness {
    /// What is measured.
    pub measure: CompletenessMeasure,
    /// Smallest acceptable ratio, 0..=1.
    pub min_ratio: f64,
}

/// What a completeness objective measures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompletenessMeasure {
    /// Share of rows where `column` is not NULL.
    NonNull {
        /// The column.
        column: String,
    },
    /// The product's row count divided by the upstream product's.
    UpstreamRows {
        /// The upstream product.
        upstream: ProductId,
    },
}

/// When a product is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Refresh {
    /// Cron expression (5 or 6 fields), if scheduled.
    pub schedule: Option<String>,
    /// Rebuild when an upstream product publishes a new version.
    pub on_upstream_change: bool,
}

/// Who may read a product and what they see.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Access {
    /// Principals allowed to read: `user:…`, `group:…`, `domain:…` or `*`.
    pub readers: Vec<String>,
    /// SQL predicate over the product's columns and `principal` helpers.
    pub row_filter: Option<String>,
    /// Column masks by column name.
    pub masks: BTreeMap<String, Mask>,
    /// Principals that see unmasked values.
    pub unmasked_for: Vec<String>,
    /// Whether principals who cannot read the product may see its public card (id, title,
    /// description, owner, domain, tags, status) and request access; hidden by default.
    /// Left out of the stored form when false, so descriptor hashes of existing products stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discoverable: bool,
    /// Principals who may query the product only in aggregate (never a row), and how. Left out
    /// of the stored form when absent, so descriptor hashes of existing products stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate_only: Option<crate::aggregate::AggregateOnly>,
}

/// How a masked column is shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mask {
    /// Stable salted hash.
    Hash,
    /// A fixed redaction marker.
    Redact,
    /// NULL.
    Null,
    /// Keep a few characters at the ends, replace the rest.
    Partial {
        /// Characters kept at the start.
        keep_first: u32,
        /// Characters kept at the end.
        keep_last: u32,
    },
    /// A SQL expression over the row.
    Sql {
        /// The expression.
        expr: String,
    },
}

impl Mask {
    /// The mask's keyword in `product.yaml`.
    pub fn kind(&self) -> &'static str {
        match self {
            Mask::Hash => "hash",
            Mask::Redact => "redact",
            Mask::Null => "null",
            Mask::Partial { .. } => "partial",
            Mask::Sql { .. } => "sql",
        }
    }

    /// How much a mask hides, for choosing the stricter of two masks on one column: `null` hides
    /// everything, a SQL expression is the owner's choice and counts as the weakest.
    pub fn strictness(&self) -> u8 {
        match self {
            Mask::Null => 4,
            Mask::Redact => 3,
            Mask::Hash => 2,
            Mask::Partial { .. } => 1,
            Mask::Sql { .. } => 0,
        }
    }
}

/// Interfaces a product is served on; all on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputPorts {
    /// SQL through the CLI and catalog.
    pub sql: bool,
    /// Arrow Flight SQL.
    pub flight_sql: bool,
    /// PostgreSQL wire protocol.
    pub postgres: bool,
    /// HTTP REST.
    pub rest: bool,
    /// File export and direct Delta access.
    pub file_export: bool,
}

impl Default for OutputPorts {
    fn default() -> Self {
        OutputPorts { sql: true, flight_sql: true, postgres: true, rest: true, file_export: true }
    }
}
