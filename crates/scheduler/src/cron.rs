//! Cron schedules of published products: which fired between two instants.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use meshwork_core::descriptor::ProductDescriptor;
use meshwork_core::id::ProductId;

/// The parsed `refresh.schedule` of every product that has one. Schedules are in UTC.
#[derive(Debug, Default)]
pub struct CronTable {
    schedules: Vec<(ProductId, Cron)>,
}

impl CronTable {
    /// Schedules of `descriptors`; a schedule that does not parse (validation refuses those)
    /// is skipped with a warning.
    pub fn new(descriptors: &BTreeMap<ProductId, ProductDescriptor>) -> CronTable {
        let mut schedules = Vec::new();
        for (id, descriptor) in descriptors {
            let Some(pattern) = &descriptor.refresh.schedule else { continue };
            match Cron::from_str(pattern) {
                Ok(cron) => schedules.push((id.clone(), cron)),
                Err(error) => tracing::warn!(product = %id, %pattern, %error, "cron schedule does not parse; not scheduled"),
            }
        }
        CronTable { schedules }
    }

    /// Products whose schedule fires in `(since, until]`. Several firings in the interval (a
    /// server that was down) count once: a refresh builds the latest data anyway.
    pub fn due(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<ProductId> {
        self.schedules
            .iter()
            .filter(|(_, cron)| cron.find_next_occurrence(&since, false).is_ok_and(|next| next <= until))
            .map(|(id, _)| id.clone())
            .collect()
    }
}
