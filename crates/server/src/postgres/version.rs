//! The one server version a Postgres client sees: in the startup parameters, `version()` and
//! `SHOW server_version[_num]`, in PostgreSQL's format with Meshwork named.
//!
//! Drivers decide what SQL to send from it (psql, pgJDBC and SQLAlchemy pick their catalog
//! queries by version; SQLAlchemy refuses to connect when `version()` does not parse), so the
//! three places must agree. PostgreSQL 16 is what datafusion-postgres's catalog imitates.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire::api::auth::DefaultServerParameterProvider;
use meshwork_core::principal::Principal;

/// The PostgreSQL version Meshwork answers as (`server_version`).
pub(crate) const SERVER_VERSION: &str = "16.6";

/// [`SERVER_VERSION`] as PostgreSQL's number (`server_version_num`).
pub(crate) const SERVER_VERSION_NUM: &str = "160006";

/// `DateStyle` as PostgreSQL's default: dates are written ISO (year first) whatever the order.
pub(crate) const DATE_STYLE: &str = "ISO, MDY";

/// What `version()` answers, e.g.
/// `PostgreSQL 16.6 (Meshwork 0.1.0, DataFusion 55.2.0) on x86_64-pc-linux-gnu, 64-bit`.
pub(crate) fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Meshwork {}, DataFusion {}) on {}, {}-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        target(),
        usize::BITS
    )
}

/// The platform in the GNU triple PostgreSQL prints (`x86_64-pc-linux-gnu`).
fn target() -> String {
    let (arch, os) = (std::env::consts::ARCH, std::env::consts::OS);
    match os {
        "linux" => format!("{arch}-pc-linux-gnu"),
        "macos" => format!("{arch}-apple-darwin"),
        other => format!("{arch}-{other}"),
    }
}

/// The parameters sent once a connection is authenticated: the version above, and the
/// principal's name and rights instead of pgwire's defaults (which say superuser to everyone).
pub(crate) fn server_parameters(principal: &Principal) -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = SERVER_VERSION.to_owned();
    parameters.date_style = DATE_STYLE.to_owned();
    parameters.is_superuser = principal.admin;
    parameters.session_authorization = Some(principal.name.clone());
    parameters
}

/// Replaces DataFusion's `version()` in `context` with [`version_string`].
pub(crate) fn register(context: &SessionContext) {
    context.register_udf(ScalarUDF::new_from_impl(Version { signature: Signature::nullary(Volatility::Immutable), text: version_string() }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Version {
    signature: Signature,
    text: String,
}

impl ScalarUDFImpl for Version {
    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(self.text.clone()))))
    }
}
