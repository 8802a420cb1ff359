//! Deterministic generator of the example mesh's source data: customers, orders and campaigns
//! with skewed, seasonal, realistic distributions.

use std::fmt::Write;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ExampleOptions;

const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Aiko", "Ben", "Carla", "Chen", "Dana", "Diego", "Elena", "Emeka", "Eva", "Farah",
    "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jonas", "Julia", "Kenji", "Lara", "Leo", "Lina", "Marco", "Maya", "Mei",
    "Nadia", "Noah", "Olga", "Omar", "Paula", "Priya", "Rafael", "Rosa", "Sami", "Sara", "Tariq", "Theo", "Uma", "Vera", "Wei",
    "Yara", "Yusuf", "Zoe",
];
const LAST_NAMES: &[&str] = &[
    "Andersen", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jansen", "Kowalski", "Lopez",
    "Martin", "Nakamura", "Okafor", "Park", "Quinn", "Rossi", "Silva", "Tanaka", "Umar", "Varga", "Wang", "Xu", "Yilmaz", "Zhang",
];
/// (region, share of customers, countries)
const REGIONS: &[(&str, f64, &[&str])] = &[
    ("EU", 0.45, &["DE", "FR", "NL", "ES", "IT", "SE", "PL"]),
    ("NA", 0.35, &["US", "CA", "MX"]),
    ("APAC", 0.20, &["JP", "AU", "SG", "IN", "KR"]),
];
const SEGMENTS: &[(&str, f64)] = &[("consumer", 0.70), ("business", 0.25), ("enterprise", 0.05)];
const CHANNELS: &[(&str, f64)] = &[("web", 0.55), ("mobile", 0.35), ("store", 0.10)];
const STATUSES: &[(&str, f64)] = &[("completed", 0.86), ("cancelled", 0.06), ("refunded", 0.04), ("pending", 0.035), ("test", 0.005)];
/// Share of orders by hour of day (UTC), peaking in the evening.
const HOUR_WEIGHTS: [f64; 24] =
    [1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.8, 1.5, 2.2, 2.8, 3.0, 3.2, 3.6, 3.4, 3.2, 3.2, 3.4, 3.8, 4.4, 5.0, 5.2, 4.6, 3.2, 1.8];
const CAMPAIGN_CHANNELS: &[&str] = &["email", "social", "search"];

/// One generated customer.
#[derive(Debug, Clone)]
pub struct Customer {
    id: u64,
    name: String,
    email: String,
    country: &'static str,
    region: &'static str,
    segment: &'static str,
    signup: NaiveDate,
}

/// One generated order.
#[derive(Debug, Clone)]
pub struct Order {
    id: u64,
    customer_id: u64,
    placed_at: NaiveDateTime,
    status: &'static str,
    channel: &'static str,
    campaign_code: Option<String>,
    items: u32,
    amount_cents: i64,
}

/// One generated marketing campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    id: u64,
    code: String,
    name: String,
    channel: &'static str,
    start: NaiveDate,
    end: NaiveDate,
    budget_cents: i64,
}

/// All generated source data of the example mesh.
#[derive(Debug, Clone)]
pub struct ExampleData {
    /// Customers by id.
    pub customers: Vec<Customer>,
    /// Orders by id.
    pub orders: Vec<Order>,
    /// Campaigns by id.
    pub campaigns: Vec<Campaign>,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, weighted: &[(T, f64)]) -> T {
    let total: f64 = weighted.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (value, weight) in weighted {
        if x < *weight {
            return *value;
        }
        x -= weight;
    }
    weighted[weighted.len() - 1].0
}

/// A standard normal sample (Box–Muller), so no distribution crate is needed.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

impl ExampleData {
    /// Generates the data; the same options always give the same data.
    pub fn generate(options: &ExampleOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date");
        let days = 731; // 2024 and 2025

        let campaigns: Vec<Campaign> = (0..8)
            .flat_map(|quarter| CAMPAIGN_CHANNELS.iter().map(move |channel| (quarter, *channel)))
            .enumerate()
            .map(|(i, (quarter, channel))| {
                let year = 2024 + quarter / 4;
                let q = quarter % 4 + 1;
                let q_start = NaiveDate::from_ymd_opt(year, (q * 3 - 2) as u32, 1).expect("valid date");
                let begin = q_start + Duration::days(rng.random_range(0..20));
                let end = begin + Duration::days(rng.random_range(21..60));
                let season = ["Winter", "Spring", "Summer", "Autumn"][(q - 1) as usize];
                Campaign {
                    id: i as u64 + 1,
                    code: format!("{}{}-{}", season.to_uppercase(), year % 100, &channel[..2].to_uppercase()),
                    name: format!("{season} {year} {channel}"),
                    channel,
                    start: begin,
                    end,
                    budget_cents: rng.random_range(5_000..40_000) * 100,
                }
            })
            .collect();

        let customer_count = (options.orders / 5).max(50);
        let customers: Vec<Customer> = (1..=customer_count as u64)
            .map(|id| {
                let (region, countries) = {
                    let weighted: Vec<((&'static str, &'static [&'static str]), f64)> =
                        REGIONS.iter().map(|(r, w, c)| ((*r, *c), *w)).collect();
                    pick(&mut rng, &weighted)
                };
                let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
                let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
                Customer {
                    id,
                    name: format!("{first} {last}"),
                    email: format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), id),
                    country: countries[rng.random_range(0..countries.len())],
                    region,
                    segment: pick(&mut rng, SEGMENTS),
                    signup: NaiveDate::from_ymd_opt(2021, 1, 1).expect("valid date") + Duration::days(rng.random_range(0..1095)),
                }
            })
            .collect();

        let hour_weights: Vec<(u32, f64)> = HOUR_WEIGHTS.iter().enumerate().map(|(h, w)| (h as u32, *w)).collect();
        let mut orders: Vec<Order> = (1..=options.orders as u64)
            .map(|id| {
                // Few customers place many orders: a power law over customer rank.
                let rank = (customer_count as f64 * rng.random::<f64>().powf(2.2)) as usize;
                let customer_id = rank.min(customer_count - 1) as u64 + 1;
                // Weekends and the year-end season sell more: rejection sampling over days.
                let day = loop {
                    let day = start + Duration::days(rng.random_range(0..days));
                    let mut weight = if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) { 1.0 } else { 0.75 };
                    if day.month() >= 11 {
                        weight *= 1.3;
                    }
                    if rng.random::<f64>() * 1.3 < weight {
                        break day;
                    }
                };
                let hour = pick(&mut rng, &hour_weights);
                let placed_at = day
                    .and_hms_opt(hour, rng.random_range(0..60), rng.random_range(0..60))
                    .expect("valid time");
                let items = 1 + (-(rng.random::<f64>().max(1e-9)).ln() * 1.2) as u32;
                let items = items.min(12);
                let amount_cents: i64 = (0..items).map(|_| ((3.1 + 0.65 * normal(&mut rng)).exp() * 100.0).round() as i64).sum();
                let date = placed_at.date();
                let active: Vec<&Campaign> = campaigns.iter().filter(|c| c.start <= date && date <= c.end).collect();
                let campaign_code = (!active.is_empty() && rng.random::<f64>() < 0.35)
                    .then(|| active[rng.random_range(0..active.len())].code.clone());
                Order {
                    id,
                    customer_id,
                    placed_at,
                    status: pick(&mut rng, STATUSES),
                    channel: pick(&mut rng, CHANNELS),
                    campaign_code,
                    items,
                    amount_cents,
                }
            })
            .collect();
        orders.sort_by_key(|o| (o.placed_at, o.id));
        ExampleData { customers, orders, campaigns }
    }

    /// `customers.csv`.
    pub fn customers_csv(&self) -> String {
        let mut out = String::from("customer_id,full_name,email,country,region,segment,signup_date\n");
        for c in &self.customers {
            let _ = writeln!(out, "{},{},{},{},{},{},{}", c.id, c.name, c.email, c.country, c.region, c.segment, c.signup);
        }
        out
    }

    /// Orders as one CSV per year, in time order.
    pub fn orders_csv_by_year(&self) -> Vec<(i32, String)> {
        let mut files: Vec<(i32, String)> = Vec::new();
        for o in &self.orders {
            let year = o.placed_at.year();
            if files.last().is_none_or(|(y, _)| *y != year) {
                files.push((year, String::from("order_id,customer_id,placed_at,status,channel,campaign_code,items,amount\n")));
            }
            let out = &mut files.last_mut().expect("pushed").1;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{}.{:02}",
                o.id,
                o.customer_id,
                o.placed_at.format("%Y-%m-%dT%H:%M:%SZ"),
                o.status,
                o.channel,
                o.campaign_code.as_deref().unwrap_or(""),
                o.items,
                o.amount_cents / 100,
                o.amount_cents % 100
            );
        }
        files
    }

    /// `campaigns.ndjson`.
    pub fn campaigns_ndjson(&self) -> String {
        let mut out = String::new();
        for c in &self.campaigns {
            let _ = writeln!(
                out,
                r#"{{"campaign_id": {}, "code": "{}", "name": "{}", "channel": "{}", "start_date": "{}", "end_date": "{}", "budget": {}.{:02}}}"#,
                c.id,
                c.code,
                c.name,
                c.channel,
                c.start,
                c.end,
                c.budget_cents / 100,
                c.budget_cents % 100
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_skewed() {
        let options = ExampleOptions { orders: 5_000, seed: 7 };
        let a = ExampleData::generate(&options);
        let b = ExampleData::generate(&options);
        assert_eq!(a.customers_csv(), b.customers_csv());
        assert_eq!(a.orders_csv_by_year(), b.orders_csv_by_year());
        assert_eq!(a.orders.len(), 5_000);
        // The top 10% of customers place far more than 10% of orders.
        let mut per_customer = vec![0usize; a.customers.len() + 1];
        for o in &a.orders {
            per_customer[o.customer_id as usize] += 1;
        }
        per_customer.sort_unstable_by(|x, y| y.cmp(x));
        let top: usize = per_customer[..a.customers.len() / 10].iter().sum();
        assert!(top > a.orders.len() / 4, "top decile placed {top} orders");
        assert!(a.orders.iter().any(|o| o.campaign_code.is_some()));
        assert!(a.orders.iter().any(|o| o.status == "test"));
    }
}
