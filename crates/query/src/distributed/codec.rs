//! The plan codec of a Meshwork cluster: the policy fence, the mask functions and the
//! size-checked functions travel with a plan to the Ballista scheduler and its executors;
//! everything else is Ballista's and DataFusion's own encoding.
//!
//! The fence must survive the trip: it is what keeps a scheduler's or executor's optimizer from
//! moving a consumer's predicate below the row filter. Masks travel by kind only — the hash
//! mask's salt is never on the wire: an executor reads it from the mesh's catalog when it
//! starts, and the scheduler, which only splits and relays plans, never has it (it decodes a
//! hash mask into one that refuses to run, see [`MaskHash::sealed`]).

use std::sync::Arc;

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use crate::masks::{MaskHash, MaskPartial};
use crate::rewrite::PolicyFenceExec;

/// First byte of an encoded plan node: whose node it is.
const BALLISTA_NODE: u8 = 0;
const FENCE_NODE: u8 = 1;

/// First byte of an encoded function: which of Meshwork's functions it is. Functions of
/// DataFusion travel by name with nothing encoded.
const HASH_MASK: u8 = 1;
const PARTIAL_MASK: u8 = 2;
const BOUNDED: u8 = 3;

#[derive(Serialize, Deserialize)]
struct Fence {
    product: String,
    published_rows: u64,
}

/// Meshwork's codec around Ballista's.
pub struct MeshCodec {
    ballista: BallistaPhysicalExtensionCodec,
    /// The mesh's mask salt; `None` on a scheduler.
    salt: Option<String>,
    /// DataFusion's own functions, under the size-checked replacements decoded here.
    functions: SessionState,
}

// The salt must never be printed.
impl std::fmt::Debug for MeshCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCodec").field("salt", &self.salt.as_ref().map(|_| "<secret>")).finish_non_exhaustive()
    }
}

impl MeshCodec {
    /// The codec of a process that runs plans (Meshwork itself, an executor): it computes
    /// hash masks with `salt`.
    pub fn with_salt(salt: String) -> MeshCodec {
        MeshCodec::new(Some(salt))
    }

    /// The codec of a process that only relays plans (the scheduler).
    pub fn relay() -> MeshCodec {
        MeshCodec::new(None)
    }

    fn new(salt: Option<String>) -> MeshCodec {
        MeshCodec { ballista: BallistaPhysicalExtensionCodec::default(), salt, functions: SessionStateBuilder::new().with_default_features().build() }
    }
}

impl MeshCodec {
    /// The first of Meshwork's functions in `plan` outside a projection, filter, aggregate or
    /// scan (a mask pushed into it): nodes of DataFusion's, encoded with this codec, whose
    /// expressions Ballista never copies.
    /// Ballista encodes the expressions of the nodes it adds (shuffle writers and readers
    /// partitioning by a join or sort key) with DataFusion's default codec, which knows such a
    /// function only by name: a size-checked `repeat` would come back as DataFusion's own,
    /// unchecked, and a mask would not decode. Plans with one are kept in-process.
    pub(crate) fn function_outside_projections(&self, plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
        use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
        use datafusion::physical_expr::ScalarFunctionExpr;
        use datafusion::datasource::source::DataSourceExec;
        use datafusion::physical_plan::aggregates::AggregateExec;
        use datafusion::physical_plan::filter::FilterExec;
        use datafusion::physical_plan::projection::ProjectionExec;
        let mut stack = vec![plan.clone()];
        let mut found = None;
        while let Some(node) = stack.pop() {
            let copied = node.downcast_ref::<ProjectionExec>().is_none()
                && node.downcast_ref::<FilterExec>().is_none()
                && node.downcast_ref::<AggregateExec>().is_none()
                && node.downcast_ref::<DataSourceExec>().is_none();
            if copied {
                let _ = node.apply_expressions(&mut |expr| {
                    expr.apply(|e| {
                        if let Some(call) = e.downcast_ref::<ScalarFunctionExpr>() {
                            let mut buf = Vec::new();
                            if self.try_encode_udf(call.fun(), &mut buf).is_ok() && buf.first().is_some_and(|tag| [HASH_MASK, PARTIAL_MASK, BOUNDED].contains(tag)) {
                                found = Some(format!("{} in {}", call.fun().name(), node.name()));
                                return Ok(TreeNodeRecursion::Stop);
                            }
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })
                });
                if found.is_some() {
                    return found;
                }
            }
            stack.extend(node.children().into_iter().cloned());
        }
        None
    }
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("a {what} of a distributed plan could not be decoded: {detail}"))
}

impl PhysicalExtensionCodec for MeshCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[Arc<dyn ExecutionPlan>], ctx: &TaskContext, converter: &dyn PhysicalProtoConverterExtension) -> Result<Arc<dyn ExecutionPlan>> {
        match buf.split_first() {
            Some((&FENCE_NODE, rest)) => {
                let fence: Fence = serde_json::from_slice(rest).map_err(|e| corrupt("policy fence", e))?;
                let [input] = inputs else { return Err(corrupt("policy fence", format!("{} inputs instead of one", inputs.len()))) };
                Ok(Arc::new(PolicyFenceExec::new(fence.product, fence.published_rows, input.clone())))
            }
            Some((&BALLISTA_NODE, rest)) => self.ballista.try_decode(rest, inputs, ctx, converter),
            _ => Err(corrupt("plan node", "unknown kind")),
        }
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>, converter: &dyn PhysicalProtoConverterExtension) -> Result<()> {
        if let Some(fence) = node.downcast_ref::<PolicyFenceExec>() {
            buf.push(FENCE_NODE);
            let (product, published_rows) = fence.parts();
            serde_json::to_writer(buf, &Fence { product: product.to_owned(), published_rows }).map_err(|e| DataFusionError::Internal(e.to_string()))?;
            return Ok(());
        }
        buf.push(BALLISTA_NODE);
        self.ballista.try_encode(node, buf, converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match buf.split_first() {
            Some((&HASH_MASK, _)) => Ok(match &self.salt {
                Some(salt) => MaskHash::udf(salt),
                None => MaskHash::sealed(),
            }),
            Some((&PARTIAL_MASK, rest)) => {
                let (first, last): (u32, u32) = serde_json::from_slice(rest).map_err(|e| corrupt("partial mask", e))?;
                Ok(MaskPartial::udf(first, last))
            }
            Some((&BOUNDED, rest)) => {
                let limit = <[u8; 8]>::try_from(rest).map_err(|_| corrupt("size-checked function", "no limit"))?;
                crate::bounded::rebuild(name, u64::from_le_bytes(limit) as usize, &self.functions)
            }
            _ => self.ballista.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        let inner = node.inner().as_ref() as &dyn std::any::Any;
        if inner.is::<MaskHash>() {
            buf.push(HASH_MASK);
        } else if let Some(partial) = inner.downcast_ref::<MaskPartial>() {
            buf.push(PARTIAL_MASK);
            serde_json::to_writer(buf, &(partial.keep_first, partial.keep_last)).map_err(|e| DataFusionError::Internal(e.to_string()))?;
        } else if crate::privacy::is_noise(node) {
            // Noise comes from the session's own source, in-process; such plans stay local.
            return Err(DataFusionError::NotImplemented("differentially private noise is drawn in-process".into()));
        } else if let Some(limit) = crate::bounded::limit_of(node) {
            buf.push(BOUNDED);
            buf.extend_from_slice(&(limit as u64).to_le_bytes());
        } else {
            self.ballista.try_encode_udf(node, buf)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::common::ScalarValue;
    use datafusion::config::ConfigOptions;
    use datafusion::execution::TaskContext;
    use datafusion::logical_expr::ScalarUDF;
    use datafusion::physical_expr::ScalarFunctionExpr;
    use datafusion::physical_plan::expressions::Literal;
    use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
    use datafusion::physical_plan::projection::ProjectionExec;
    use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr, collect, displayable};
    use datafusion_proto::physical_plan::AsExecutionPlan;
    use datafusion_proto::protobuf::PhysicalPlanNode;
    use prost::Message;

    use super::MeshCodec;
    use crate::masks::{MaskHash, MaskPartial};
    use crate::rewrite::PolicyFenceExec;

    const SALT: &str = "5a17-never-on-the-wire";

    fn masked(udf: Arc<ScalarUDF>, value: &str) -> Arc<dyn PhysicalExpr> {
        let literal = Arc::new(Literal::new(ScalarValue::Utf8(Some(value.into()))));
        let name = udf.name().to_owned();
        Arc::new(ScalarFunctionExpr::new(&name, udf, vec![literal], Field::new("m", DataType::Utf8, true).into(), Arc::new(ConfigOptions::default())))
    }

    /// `[masked email, masked card]` above a policy fence, as the policy rewrite plans a read.
    fn plan(salt: &str) -> Arc<dyn ExecutionPlan> {
        let fence = Arc::new(PolicyFenceExec::new("sales.customers".into(), 7, Arc::new(PlaceholderRowExec::new(Arc::new(datafusion::arrow::datatypes::Schema::empty())))));
        let exprs = vec![(masked(MaskHash::udf(salt), "ana@example.com"), "email".to_owned()), (masked(MaskPartial::udf(1, 4), "4111111111111111"), "card".to_owned())];
        Arc::new(ProjectionExec::try_new(exprs, fence).unwrap())
    }

    fn trip(plan: Arc<dyn ExecutionPlan>, from: &MeshCodec, to: &MeshCodec) -> (Vec<u8>, Arc<dyn ExecutionPlan>) {
        let bytes = PhysicalPlanNode::try_from_physical_plan(plan, from).unwrap().encode_to_vec();
        let decoded = PhysicalPlanNode::decode(bytes.as_slice()).unwrap().try_into_physical_plan(&TaskContext::default(), to).unwrap();
        (bytes, decoded)
    }

    fn values(batches: &[RecordBatch]) -> Vec<String> {
        (0..2).map(|i| batches[0].column(i).as_string::<i32>().value(0).to_owned()).collect()
    }

    #[test]
    fn plans_with_a_checked_function_in_a_sort_key_stay_in_process() {
        use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
        use datafusion::physical_plan::sorts::sort::SortExec;
        let bounded = || {
            let state = datafusion::execution::SessionStateBuilder::new().with_default_features().build();
            crate::bounded::rebuild("lpad", 1 << 20, &state).unwrap()
        };
        let codec = MeshCodec::relay();
        let projected = plan(SALT);
        assert_eq!(codec.function_outside_projections(&projected), None, "masks in a projection travel");
        let key = PhysicalSortExpr::new_default(masked(bounded(), "x"));
        let sorted: Arc<dyn ExecutionPlan> = Arc::new(SortExec::new(LexOrdering::new([key]).unwrap(), projected.clone()));
        assert_eq!(codec.function_outside_projections(&sorted).as_deref(), Some("lpad in SortExec"));
        let plain = PhysicalSortExpr::new_default(masked(datafusion::functions::unicode::lpad(), "x"));
        let sorted: Arc<dyn ExecutionPlan> = Arc::new(SortExec::new(LexOrdering::new([plain]).unwrap(), projected));
        assert_eq!(codec.function_outside_projections(&sorted), None, "DataFusion's own functions travel by name");
    }

    #[tokio::test]
    async fn the_fence_and_masks_cross_to_executors_without_the_salt() {
        let local = values(&collect(plan(SALT), Arc::new(TaskContext::default())).await.unwrap());
        assert_eq!(local[1], "4***********1111");

        // Meshwork encodes, the scheduler decodes and re-encodes, an executor decodes and runs.
        let (sent, at_scheduler) = trip(plan(SALT), &MeshCodec::relay(), &MeshCodec::relay());
        assert!(!String::from_utf8_lossy(&sent).contains(SALT), "the salt went on the wire");
        let shown = displayable(at_scheduler.as_ref()).indent(false).to_string();
        assert!(shown.contains("PolicyFenceExec: product=sales.customers"), "{shown}");
        let error = collect(at_scheduler.clone(), Arc::new(TaskContext::default())).await.unwrap_err().to_string();
        assert!(error.contains("without the mesh's salt"), "{error}");

        let (_, at_executor) = trip(at_scheduler, &MeshCodec::relay(), &MeshCodec::with_salt(SALT.into()));
        let shown = displayable(at_executor.as_ref()).indent(false).to_string();
        assert!(shown.contains("PolicyFenceExec: product=sales.customers"), "{shown}");
        assert_eq!(values(&collect(at_executor, Arc::new(TaskContext::default())).await.unwrap()), local);

        // Another mesh's executor (another salt) would hash differently: the salt is the mesh's.
        let (_, elsewhere) = trip(plan(SALT), &MeshCodec::relay(), &MeshCodec::with_salt("other".into()));
        assert_ne!(values(&collect(elsewhere, Arc::new(TaskContext::default())).await.unwrap())[0], local[0]);
    }
}
