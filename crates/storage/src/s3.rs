//! S3-compatible object storage: the client of a mesh's bucket, and its registration with
//! delta-rs so that every `s3://` table URL in the catalog opens through it.
//!
//! delta-rs finds the object store of a table URL through process-wide factories keyed by URL
//! scheme. Meshwork registers one factory for `s3://` that hands out the client built from the
//! mesh's `storage:` settings, per bucket. The alternative, delta-rs's own `s3` feature, builds
//! the AWS SDK (some thirty crates) for what `object_store`'s S3 client, already in the build,
//! does: Delta commits rely on S3's conditional put (`If-None-Match: *`), so concurrent writers
//! of one table can never overwrite each other's commit and no lock service (DynamoDB) is needed.
//!
//! Credentials come from the environment only (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, or the instance, container and web-identity credentials `object_store`
//! reads), never from `mesh.yaml`, and are never logged: the client's `Debug` output is never
//! printed, and errors name the bucket and key, not the request.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock, RwLock};
use std::time::Duration;

use deltalake::logstore::{default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use deltalake::{DeltaResult, DeltaTableError};
use meshwork_core::descriptor::S3Location;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{ObjectStore, RetryConfig};
use url::Url;

use crate::{Result, StorageError};

/// The clients of the buckets this process opened, by `s3://bucket`.
static BUCKETS: LazyLock<RwLock<HashMap<String, Arc<dyn ObjectStore>>>> = LazyLock::new(Default::default);

/// The client of `location`'s bucket, registered so delta-rs opens `s3://` tables through it.
///
/// `credentials` (access key id, secret) replace the environment's; only test servers pass them.
pub(crate) fn connect(location: &S3Location, credentials: Option<(&str, &str)>) -> Result<Arc<dyn ObjectStore>> {
    register_factories();
    let bad = |message: String| StorageError::ObjectStore { location: location.url(), message };
    // `from_env` reads every `AWS_*` variable (credentials, `AWS_ENDPOINT_URL`, `AWS_REGION`,
    // `AWS_ALLOW_HTTP`…); what `mesh.yaml` says wins over the environment.
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&location.bucket)
        // S3 and every S3-compatible server of note honour `If-None-Match: *`; it is what keeps
        // two commits of one version apart.
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        // Transient failures (5xx, throttling, dropped connections) are retried, but a dead or
        // mistyped endpoint is reported within seconds, not after object_store's default of
        // ten retries (about a minute).
        .with_retry(RetryConfig { max_retries: 5, retry_timeout: Duration::from_secs(60), ..RetryConfig::default() });
    if let Some(endpoint) = &location.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &location.region {
        builder = builder.with_region(region);
    } else if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    if let Some(allow) = location.allow_http {
        builder = builder.with_allow_http(allow);
    }
    if let Some((key, secret)) = credentials {
        builder = builder.with_access_key_id(key).with_secret_access_key(secret);
    }
    let store: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(|e| bad(e.to_string()))?);
    BUCKETS.write().expect("the bucket registry is never poisoned").insert(bucket_key(&location.bucket), store.clone());
    Ok(store)
}

/// Registers the client of every bucket this process opened with `runtime`, so DataFusion's
/// own Parquet scans read `s3://` product files (a cluster executor's task runtimes).
pub(crate) fn register_buckets(runtime: &datafusion::execution::runtime_env::RuntimeEnv) {
    for (key, store) in BUCKETS.read().expect("the bucket registry is never poisoned").iter() {
        if let Ok(url) = Url::parse(key) {
            runtime.register_object_store(&url, store.clone());
        }
    }
}

fn bucket_key(bucket: &str) -> String {
    format!("s3://{bucket}")
}

/// Registers the `s3://` factories with delta-rs, once per process.
fn register_factories() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let scheme = Url::parse("s3://").expect("a valid scheme URL");
        object_store_factories().insert(scheme.clone(), Arc::new(RegisteredBuckets));
        logstore_factories().insert(scheme, Arc::new(DefaultLogStores));
    });
}

/// delta-rs's object store factory for `s3://`: the client of the table's bucket.
struct RegisteredBuckets;

impl ObjectStoreFactory for RegisteredBuckets {
    fn parse_url_opts(&self, url: &Url, _config: &StorageConfig) -> DeltaResult<(ObjectStoreRef, Path)> {
        let bucket = url.host_str().unwrap_or_default();
        let store = BUCKETS.read().expect("the bucket registry is never poisoned").get(&bucket_key(bucket)).cloned();
        let store = store.ok_or_else(|| {
            DeltaTableError::Generic(format!(
                "no storage settings for bucket `{bucket}` in this process: the table `{url}` is not in the bucket `storage:` names in mesh.yaml"
            ))
        })?;
        let path = Path::from_url_path(url.path()).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        Ok((store, path))
    }
}

/// delta-rs's default log store (commits by conditional put) for `s3://` tables.
struct DefaultLogStores;

impl LogStoreFactory for DefaultLogStores {
    fn with_options(&self, prefixed_store: ObjectStoreRef, root_store: ObjectStoreRef, location: &Url, options: &StorageConfig) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// `message` without what an S3 error can carry of a signed request. object_store's errors
/// include the server's response body, and S3's `SignatureDoesNotMatch` answer echoes the
/// access key id, the canonical request (with a session token's header) and the string to sign.
pub(crate) fn redact(message: &str) -> String {
    const HIDDEN: &str = "(redacted)";
    let mut out = message.to_owned();
    for element in ["AWSAccessKeyId", "CanonicalRequest", "CanonicalRequestBytes", "StringToSign", "StringToSignBytes", "SignatureProvided"] {
        let (open, close) = (format!("<{element}>"), format!("</{element}>"));
        let mut from = 0;
        while let Some(found) = out[from..].find(&open) {
            let start = from + found + open.len();
            let end = out[start..].find(&close).map_or(out.len(), |i| start + i);
            out.replace_range(start..end, HIDDEN);
            from = start + HIDDEN.len();
        }
    }
    // Signed-request parameters and headers, wherever else they show (a request URI).
    for marker in ["x-amz-security-token", "X-Amz-Security-Token", "X-Amz-Credential", "X-Amz-Signature", "Signature=", "Credential="] {
        let mut from = 0;
        while let Some(found) = out[from..].find(marker) {
            let start = from + found + marker.len();
            let end = out[start..].find(|c: char| c.is_whitespace() || matches!(c, '&' | '<' | '"' | ',')).map_or(out.len(), |i| start + i);
            out.replace_range(start..end, HIDDEN);
            from = start + HIDDEN.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn signed_request_details_are_redacted() {
        let body = "<Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId>\
            <StringToSign>AWS4-HMAC-SHA256 x</StringToSign><CanonicalRequest>GET /\nx-amz-security-token:SECRETTOKEN\n</CanonicalRequest></Error> \
            url https://b.s3.amazonaws.com/k?X-Amz-Security-Token=SECRETTOKEN&X-Amz-Signature=abc";
        let out = super::redact(body);
        for secret in ["AKIDEXAMPLE", "SECRETTOKEN", "AWS4-HMAC-SHA256 x", "=abc"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(out.contains("<Code>SignatureDoesNotMatch</Code>"), "{out}");
    }
}
