//! Sunsets as lifecycle events: the day a deprecated product's sunset date is reached, a
//! `product.sunset` event is recorded once, by whichever of `apply`, a refresh or the running
//! server's scheduler notices first. What "sunset" means for reads is decided in
//! `meshwork_core::lifecycle`.

use chrono::NaiveDate;
use meshwork_catalog::{CatalogStore, EventFilter, NewEvent};
use meshwork_core::event::EventKind;
use meshwork_core::id::ProductId;
use meshwork_core::lifecycle::Lifecycle;
use serde_json::json;

use crate::PipelineError;

/// Records a `product.sunset` event for every published product whose stored descriptor is past
/// its sunset on `today` and that has none since its current version was published. Returns
/// the products it recorded one for.
pub async fn record_sunsets(catalog: &dyn CatalogStore, today: NaiveDate) -> Result<Vec<ProductId>, PipelineError> {
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
