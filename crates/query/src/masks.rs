//! Mask functions: a salted hash and a partial reveal. They are built into masked expressions
//! directly and never registered by name, so a consumer cannot call `mask_hash` on guesses to
//! reverse a hash mask.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use sha2::{Digest, Sha256};

/// Applies `mask` to the text of every value of the single argument, keeping NULLs. Strings are
/// read in place; other types are masked through their text form.
fn map_text(args: &ScalarFunctionArgs, mut mask: impl FnMut(&str, &mut String)) -> Result<ColumnarValue> {
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let input = &arrays[0];
    let mut builder = StringBuilder::with_capacity(input.len(), input.len() * 32);
    let mut scratch = String::new();
    let mut push = |value: Option<&str>| match value {
        Some(v) => {
            mask(v, &mut scratch);
            builder.append_value(&scratch);
        }
        None => builder.append_null(),
    };
    match input.data_type() {
        DataType::Utf8View => input.as_string_view().iter().for_each(&mut push),
        DataType::Utf8 => input.as_string::<i32>().iter().for_each(&mut push),
        _ => cast(input, &DataType::Utf8)?.as_string::<i32>().iter().for_each(&mut push),
    }
    Ok(ColumnarValue::Array(Arc::new(builder.finish())))
}

/// `mask_hash(value)`: hex of SHA-256 over the mesh's secret salt and the value's text. Stable
/// within a mesh, so masked keys still join and group; different across meshes.
pub(crate) struct MaskHash {
    /// The salt and SHA-256 after it; `None` on a node that only relays plans (a Ballista
    /// scheduler), which never learns the salt and cannot compute the mask.
    keyed: Option<Keyed>,
    signature: Signature,
}

struct Keyed {
    salt: String,
    /// SHA-256 after the salt and its separator, cloned for every value: the mesh's salt is
    /// 64 hex characters, so the prefix fills one whole 64-byte block, and starting from this
    /// state saves one of the two block compressions a short value (under 55 bytes) costs.
    prefix: Sha256,
}

impl MaskHash {
    pub(crate) const NAME: &str = "mask_hash";

    pub(crate) fn udf(salt: &str) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(MaskHash::new(salt)))
    }

    /// The mask as a plan relay decodes it: the same function, unable to run.
    pub(crate) fn sealed() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(MaskHash { keyed: None, signature: Signature::any(1, Volatility::Immutable) }))
    }

    fn new(salt: &str) -> MaskHash {
        let mut prefix = Sha256::new();
        prefix.update(salt.as_bytes());
        prefix.update([0u8]);
        MaskHash { keyed: Some(Keyed { salt: salt.to_owned(), prefix }), signature: Signature::any(1, Volatility::Immutable) }
    }

    fn hash_into(keyed: &Keyed, value: &str, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digest = keyed.prefix.clone();
        digest.update(value.as_bytes());
        out.clear();
        for byte in &digest.finalize()[..16] {
            out.push(HEX[(byte >> 4) as usize] as char);
            out.push(HEX[(byte & 0xf) as usize] as char);
        }
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
        self.keyed.as_ref().map(|k| &k.salt) == other.keyed.as_ref().map(|k| &k.salt)
    }
}

impl Eq for MaskHash {}

impl Hash for MaskHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Self::NAME.hash(state);
    }
}

impl ScalarUDFImpl for MaskHash {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(keyed) = &self.keyed else {
            return Err(datafusion::error::DataFusionError::Execution(
                "a hash mask reached a node without the mesh's salt: run it on an executor started with `meshwork cluster executor` on the mesh".into(),
            ));
        };
        map_text(&args, |value, out| MaskHash::hash_into(keyed, value, out))
    }
}

/// `mask_partial(value)`: keeps `keep_first` and `keep_last` characters and stars the rest. A
/// value too short to hide anything is starred entirely.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct MaskPartial {
    pub(crate) keep_first: usize,
    pub(crate) keep_last: usize,
    signature: Signature,
}

impl MaskPartial {
    pub(crate) const NAME: &str = "mask_partial";

    pub(crate) fn udf(keep_first: u32, keep_last: u32) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(MaskPartial {
            keep_first: keep_first as usize,
            keep_last: keep_last as usize,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }

    #[cfg(test)]
    fn mask(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        self.mask_into(value, &mut out);
        out
    }

    fn mask_into(&self, value: &str, out: &mut String) {
        out.clear();
        let n = value.chars().count();
        if n <= self.keep_first + self.keep_last {
            out.extend(std::iter::repeat_n('*', n));
            return;
        }
        let hidden = n - self.keep_first - self.keep_last;
        for (i, c) in value.chars().enumerate() {
            out.push(if i < self.keep_first || i >= self.keep_first + hidden { c } else { '*' });
        }
    }
}

impl ScalarUDFImpl for MaskPartial {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        map_text(&args, |value, out| self.mask_into(value, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash from the precomputed prefix is the hash of salt, separator and value.
    #[test]
    fn hash_is_sha256_of_salt_separator_and_value() {
        let salt = "9f".repeat(32);
        let mask = MaskHash::new(&salt);
        for value in ["", "a", "ines.varga1@example.com", &"x".repeat(200)] {
            let mut got = String::new();
            MaskHash::hash_into(mask.keyed.as_ref().unwrap(), value, &mut got);
            let full = Sha256::digest([salt.as_bytes(), &[0u8], value.as_bytes()].concat());
            assert_eq!(got, hex_prefix(&full[..16]), "{value}");
        }
    }

    fn hex_prefix(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn partial_keeps_the_ends_and_hides_short_values() {
        let m = MaskPartial { keep_first: 1, keep_last: 4, signature: Signature::any(1, Volatility::Immutable) };
        assert_eq!(m.mask("4111111111111111"), "4***********1111");
        assert_eq!(m.mask("abcde"), "*****");
        assert_eq!(m.mask("é-ü-xyz12"), "é****yz12");
    }
}
