//! Mask functions: a salted hash and a partial reveal. They are built into masked expressions
//! directly and never registered by name, so a consumer cannot call `mask_hash` on guesses to
//! reverse a hash mask.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use sha2::{Digest, Sha256};

/// `mask_hash(value)`: hex of SHA-256 over the mesh's secret salt and the value's text. Stable
/// within a mesh, so masked keys still join and group; different across meshes.
pub(crate) struct MaskHash {
    salt: String,
    signature: Signature,
}

impl MaskHash {
    pub(crate) fn udf(salt: &str) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(MaskHash { salt: salt.to_owned(), signature: Signature::any(1, Volatility::Immutable) }))
    }

    fn hash(&self, value: &str) -> String {
        let mut digest = Sha256::new();
        digest.update(self.salt.as_bytes());
        digest.update([0u8]);
        digest.update(value.as_bytes());
        hex::encode(&digest.finalize()[..16])
    }
}

// The salt must never be printed, not even in debug output of a plan.
impl fmt::Debug for MaskHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskHash")
    }
}

impl PartialEq for MaskHash {
    fn eq(&self, other: &Self) -> bool {
        self.salt == other.salt
    }
}

impl Eq for MaskHash {}

impl Hash for MaskHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "mask_hash".hash(state);
    }
}

impl ScalarUDFImpl for MaskHash {
    fn name(&self) -> &str {
        "mask_hash"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = cast(&arrays[0], &DataType::Utf8)?;
        let out: StringArray = text.as_string::<i32>().iter().map(|v| v.map(|s| self.hash(s))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `mask_partial(value)`: keeps `keep_first` and `keep_last` characters and stars the rest. A
/// value too short to hide anything is starred entirely.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MaskPartial {
    keep_first: usize,
    keep_last: usize,
    signature: Signature,
}

impl MaskPartial {
    pub(crate) fn udf(keep_first: u32, keep_last: u32) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(MaskPartial {
            keep_first: keep_first as usize,
            keep_last: keep_last as usize,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }

    fn mask(&self, value: &str) -> String {
        let chars: Vec<char> = value.chars().collect();
        let n = chars.len();
        if n <= self.keep_first + self.keep_last {
            return "*".repeat(n);
        }
        let mut out = String::with_capacity(value.len());
        out.extend(&chars[..self.keep_first]);
        out.extend(std::iter::repeat_n('*', n - self.keep_first - self.keep_last));
        out.extend(&chars[n - self.keep_last..]);
        out
    }
}

impl ScalarUDFImpl for MaskPartial {
    fn name(&self) -> &str {
        "mask_partial"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = cast(&arrays[0], &DataType::Utf8)?;
        let strings = text.as_string::<i32>();
        let out: StringArray = (0..strings.len()).map(|i| (!strings.is_null(i)).then(|| self.mask(strings.value(i)))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_keeps_the_ends_and_hides_short_values() {
        let m = MaskPartial { keep_first: 1, keep_last: 4, signature: Signature::any(1, Volatility::Immutable) };
        assert_eq!(m.mask("4111111111111111"), "4***********1111");
        assert_eq!(m.mask("abcde"), "*****");
        assert_eq!(m.mask("é-ü-xyz12"), "é****yz12");
    }
}
