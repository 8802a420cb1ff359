//! The DataFusion session settings and optimizer rules every Meshwork session runs with where
//! they differ from DataFusion's defaults, each chosen by measurement (`bench/run.sh settings`)
//! or, for a rule, by a wrong answer it gave; recorded in `docs/benchmarks.md`.

use std::sync::Arc;

use datafusion::prelude::SessionConfig;

/// Rows per batch. DataFusion's default is 8,192; twice that halves the per-batch overhead of
/// every operator (TPC-H SF1 geometric mean 0.95× on 2 cores) and lowered the peak memory.
pub const BATCH_ROWS: usize = 16_384;

/// Up to this many partitions, hash joins build one shared table (`CollectLeft`) instead of
/// repartitioning both inputs by the join key. With few cores, repartitioning copies every
/// probe row through a `RepartitionExec` to parallelise a build that has at most two threads
/// anyway: on 2 cores TPC-H SF1 ran 0.94× without it (q18 1.24 s → 0.89 s) with a lower peak
/// (628 vs 743 MB). With more partitions the parallel build pays, so DataFusion's default
/// (repartition, and collect only build sides under its size thresholds) is kept there.
pub(crate) const COLLECT_JOINS_UP_TO_PARTITIONS: usize = 2;

/// `config` with Meshwork's settings applied; its `target_partitions` must already be final.
/// Public so that benchmarks can run plain DataFusion exactly as Meshwork's sessions do.
pub fn tuned(config: SessionConfig) -> SessionConfig {
    let repartition_joins = config.target_partitions() > COLLECT_JOINS_UP_TO_PARTITIONS;
    config.with_batch_size(BATCH_ROWS).with_repartition_joins(repartition_joins)
}

/// DataFusion's physical optimizer rules without `aggregate_statistics`, which answers
/// aggregates from statistics instead of rows. In DataFusion 55 a filter's estimate can claim an
/// *exact* distinct count of 1 for `col = constant` (`FilterExec`'s singleton domain), so
/// `count(DISTINCT a) … WHERE a = 5 AND b = 7` was answered 1 with no matching row. Every
/// aggregate is computed from the rows instead; reading row counts from Parquet footers was
/// the only thing the rule saved.
pub(crate) fn physical_rules() -> Vec<Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>> {
    datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules.into_iter().filter(|rule| rule.name() != "aggregate_statistics").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_are_collected_on_small_machines_and_repartitioned_on_larger_ones() {
        for (partitions, repartition) in [(1, false), (2, false), (3, true), (16, true)] {
            let config = tuned(SessionConfig::new().with_target_partitions(partitions));
            assert_eq!(config.repartition_joins(), repartition, "{partitions} partitions");
            assert_eq!(config.batch_size(), BATCH_ROWS);
            assert_eq!(config.target_partitions(), partitions, "the partition count is left as it was");
        }
    }
}
