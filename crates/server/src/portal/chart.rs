//! Small inline SVG charts: an SLO's error budget over its window and bars of counts (the
//! governance trend). Drawn on the server, styled by classes in `pages.css`; each chart carries
//! its numbers as text too (`<title>`, `aria-label`), so it reads without sight or colour.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

/// Width and height of the budget chart's drawing area, in SVG units.
const BUDGET_W: f64 = 240.0;
const BUDGET_H: f64 = 64.0;
/// Below this share of budget left an objective is at risk (`meshwork-scheduler`'s rule).
const AT_RISK: f64 = 0.25;

/// The error budget left (0..=1, clamped for drawing) of one objective over time, as a line over
/// a band marking the at-risk zone. `points` are `(time, budget left)`, in any order; with
/// fewer than two the chart is a gauge of the newest value.
pub(crate) fn budget(objective: &str, points: &[(DateTime<Utc>, f64)]) -> Markup {
    let mut points: Vec<(DateTime<Utc>, f64)> = points.iter().filter(|(_, b)| b.is_finite()).copied().collect();
    points.sort_by_key(|(at, _)| *at);
    let label = match points.last() {
        Some((_, left)) => format!("error budget of {objective}: {} left now", percent(*left)),
        None => format!("error budget of {objective}: not measured yet"),
    };
    let y = |left: f64| BUDGET_H - left.clamp(0.0, 1.0) * BUDGET_H;
    let risk_top = y(AT_RISK);
    html! {
        svg.chart.budget-chart viewBox=(format!("0 0 {BUDGET_W} {BUDGET_H}")) width=(BUDGET_W) height=(BUDGET_H) role="img" aria-label=(label) {
            title { (label) }
            rect.chart-frame x="0" y="0" width=(BUDGET_W) height=(BUDGET_H) {}
            rect.chart-risk x="0" y=(fmt(risk_top)) width=(BUDGET_W) height=(fmt(BUDGET_H - risk_top)) {}
            @match points.as_slice() {
                [] => {}
                [(_, left)] => {
                    rect.chart-gauge x="0" y=(fmt(y(*left))) width=(BUDGET_W) height=(fmt(BUDGET_H - y(*left))) {}
                }
                [(first, _), .., (last, _)] => {
                    @let span = (*last - *first).num_milliseconds().max(1) as f64;
                    @let line = points
                        .iter()
                        .map(|(at, left)| format!("{},{}", fmt((*at - *first).num_milliseconds() as f64 / span * BUDGET_W), fmt(y(*left))))
                        .collect::<Vec<_>>()
                        .join(" ");
                    polyline.chart-line points=(line) {}
                }
            }
        }
    }
}

/// One bar per `(label, count)`, oldest first, scaled to the largest count; each bar names its
/// label and count in a tooltip. `what` says what is counted, for the chart's label.
pub(crate) fn bars(what: &str, counts: &[(String, u64)]) -> Markup {
    const BAR: f64 = 10.0;
    const GAP: f64 = 3.0;
    const H: f64 = 36.0;
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let width = (counts.len().max(1) as f64) * (BAR + GAP);
    let summary = match counts.last() {
        Some((label, n)) => format!("{what} over the last {} applies; newest ({label}): {n}", counts.len()),
        None => format!("{what}: no applies recorded"),
    };
    html! {
        svg.chart.bar-chart viewBox=(format!("0 0 {} {H}", fmt(width))) width=(fmt(width)) height=(H) role="img" aria-label=(summary) {
            title { (summary) }
            line.chart-axis x1="0" y1=(H) x2=(fmt(width)) y2=(H) {}
            @for (i, (label, n)) in counts.iter().enumerate() {
                @let height = if *n == 0 { 0.0 } else { (*n as f64 / max * (H - 2.0)).max(2.0) };
                rect.chart-bar.chart-bar-zero[*n == 0] x=(fmt(i as f64 * (BAR + GAP))) y=(fmt(H - height)) width=(BAR) height=(fmt(height)) {
                    title { (label) ": " (n) }
                }
            }
        }
    }
}

/// A share as a whole percentage, e.g. `62 %`; overspent budgets show below zero.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// A coordinate with at most one decimal, so the markup stays short and stable.
fn fmt(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 { format!("{}", rounded as i64) } else { format!("{rounded:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_line_spans_the_window_and_clamps_overspent_budgets() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let points = [(t0 + chrono::Duration::hours(2), -0.5), (t0, 1.0), (t0 + chrono::Duration::hours(1), 0.5)];
        let svg = budget("freshness", &points).into_string();
        assert!(svg.contains(r#"points="0,0 120,32 240,64""#), "{svg}");
        assert!(svg.contains("-50 % left now"), "{svg}");
        assert!(!svg.contains("style="), "{svg}");
    }

    #[test]
    fn one_point_is_a_gauge_and_none_says_so() {
        let t0 = Utc::now();
        assert!(budget("availability", &[(t0, 0.75)]).into_string().contains(r#"class="chart-gauge" x="0" y="16""#));
        assert!(budget("availability", &[]).into_string().contains("not measured yet"));
    }

    #[test]
    fn bars_scale_to_the_largest_count() {
        let svg = bars("findings", &[("apply 1".into(), 0), ("apply 2".into(), 4), ("apply 3".into(), 2)]).into_string();
        assert!(svg.contains(r#"class="chart-bar chart-bar-zero" x="0" y="36" width="10" height="0""#), "{svg}");
        assert!(svg.contains(r#"x="13" y="2" width="10" height="34""#), "{svg}");
        assert!(svg.contains(r#"x="26" y="19" width="10" height="17""#), "{svg}");
        assert!(svg.contains("newest (apply 3): 2"), "{svg}");
    }
}
