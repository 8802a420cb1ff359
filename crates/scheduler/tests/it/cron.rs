//! Cron schedules fire once per occurrence between ticks.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use meshwork_core::id::ProductId;
use meshwork_core::parse::parse_product;
use meshwork_scheduler::CronTable;

fn descriptor(name: &str, schedule: Option<&str>) -> (ProductId, meshwork_core::descriptor::ProductDescriptor) {
    let refresh = schedule.map(|s| format!("refresh:\n  schedule: \"{s}\"\n")).unwrap_or_default();
    let yaml = format!(
        "name: {name}\ndomain: sales\nversion: 1.0.0\ninputs:\n  - name: raw\n    source: {{ kind: csv, path: data/x.csv }}\ncontract:\n  columns:\n    - {{ name: id, type: bigint }}\n{refresh}"
    );
    let descriptor = parse_product("product.yaml", &yaml).unwrap_or_else(|d| panic!("fixture parses: {d:?}")).value;
    (descriptor.id(), descriptor)
}

#[test]
fn hourly_schedule_fires_once_per_hour_between_ticks() {
    let descriptors: BTreeMap<_, _> = [descriptor("hourly", Some("0 * * * *")), descriptor("daily", Some("30 6 * * *")), descriptor("manual", None)].into_iter().collect();
    let table = CronTable::new(&descriptors);
    let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap();
    let names = |ids: Vec<ProductId>| ids.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(table.due(at(10, 30), at(10, 59)).is_empty());
    assert_eq!(names(table.due(at(10, 30), at(11, 0))), ["sales.hourly"]);
    assert!(table.due(at(11, 0), at(11, 59)).is_empty(), "the 11:00 firing is not repeated");
    assert_eq!(names(table.due(at(5, 0), at(7, 0))), ["sales.daily", "sales.hourly"], "two hourly firings collapse into one run");
}
