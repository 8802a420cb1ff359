//! Sunsets in the catalog: the publication without a build that tells the catalog a product is
//! past its sunset, and the `product.sunset` event recorded once, by whichever of `apply`, a
//! refresh or the running server's scheduler notices first. What "sunset" means for reads is
//! decided in `meshwork_core::lifecycle`.

use chrono::NaiveDate;
use meshwork_catalog::{CatalogStore, EventFilter, NewEvent, ProductRecord, Publication, VersionRecord};
use meshwork_core::descriptor::{ProductDescriptor, ProductStatus};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_core::lifecycle::Lifecycle;
use meshwork_core::mesh::descriptor_hash;
use serde_json::json;

use crate::apply::ApplyOptions;

use crate::PipelineError;

/// The catalog lock held while sunsets are looked for and recorded.
const SUNSETS_LOCK: &str = "sunsets";

/// Records a `product.sunset` event for every published product whose stored descriptor is past
/// its sunset on `today` and that has none since its current version was published. Returns
/// the products it recorded one for.
pub async fn record_sunsets(catalog: &dyn CatalogStore, today: NaiveDate) -> Result<Vec<ProductId>, PipelineError> {
    // One process at a time looks and appends, so each sunset is recorded once.
    let _lock = catalog.lock(SUNSETS_LOCK, std::time::Duration::from_secs(10)).await?;
    let mut recorded = Vec::new();
    let current = catalog.current_versions().await?;
    for product in catalog.products().await? {
        let Lifecycle::Sunset(deprecation) = product.descriptor.lifecycle(today) else { continue };
        let since = current.get(&product.id).map(|v| v.published_at);
        let filter = EventFilter { after: 0, limit: None, product: Some(product.id.clone()), kinds: vec![EventKind::Sunset] };
        let already = catalog.events(&filter).await?.iter().any(|e| since.is_none_or(|since| e.at >= since));
        if already {
            continue;
        }
        let event = NewEvent {
            kind: EventKind::Sunset,
            product: Some(product.id.clone()),
            payload: json!({
                "version": product.version,
                "sunset": deprecation.sunset,
                "successor": deprecation.successor.as_ref().map(ToString::to_string),
            }),
        };
        catalog.append_events(&[event]).await?;
        recorded.push(product.id);
    }
    Ok(recorded)
}

/// For a product whose repository descriptor is past its sunset on `today`: makes sure the
/// catalog knows, and returns the version it served last (`None` if it was never published or
/// was purged). If the catalog's descriptor is not past its sunset yet, the repository's is
/// published over the current version's data — the same Delta version, rows, schema and lineage,
/// no build — so the product stops being served even when it could no longer be built (its
/// inputs gone, an upstream retired the same day, a rule failing).
pub(crate) async fn carry_sunset(catalog: &dyn CatalogStore, descriptor: &ProductDescriptor, options: &ApplyOptions, today: NaiveDate) -> Result<Option<VersionRecord>, PipelineError> {
    let id = descriptor.id();
    let _lock = catalog.lock(&meshwork_catalog::product_lock(&id), options.lock_wait).await?;
    let (Some(stored), Some(current)) = (catalog.product(&id).await?, catalog.current_version(&id).await?) else { return Ok(None) };
    if stored.descriptor.is_sunset(today) {
        return Ok(Some(current));
    }
    let lineage = catalog.column_lineage(&id, current.seq).await?.unwrap_or_default();
    let upstream: Vec<ProductId> = catalog.lineage().await?.into_iter().filter(|e| e.downstream == id).map(|e| e.upstream).collect();
    let mut events = vec![NewEvent {
        kind: EventKind::Published,
        product: Some(id.clone()),
        payload: json!({ "version": descriptor.version, "rows": current.row_count, "trigger": options.trigger, "rebuilt": false, "reason": "sunset" }),
    }];
    if stored.status != ProductStatus::Deprecated {
        events.push(NewEvent {
            kind: EventKind::Deprecated,
            product: Some(id.clone()),
            payload: json!({ "sunset": descriptor.sunset, "successor": descriptor.successor.as_ref().map(ToString::to_string) }),
        });
    }
    let publication = Publication {
        product: ProductRecord::of(descriptor.clone(), descriptor_hash(descriptor), stored.table_uri),
        delta_version: current.delta_version,
        schema: current.schema,
        row_count: current.row_count,
        input_fingerprint: current.input_fingerprint,
        upstream,
        lineage,
        quality: None,
        events,
        // Only the descriptor's lifecycle changed: the data, and how far it was read, stay.
        watermark: current.watermark,
        remote: current.remote,
    };
    Ok(Some(catalog.publish(&publication).await?))
}
