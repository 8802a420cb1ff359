//! Bound parameters read as PostgreSQL reads them where arrow-pg's decoding differs: a text
//! array literal bound without a type (`{"p","r"}`, what the ADBC PostgreSQL driver binds for
//! `relkind = ANY($2)`) is split by arrow-pg on commas with its quotes kept, so no element ever
//! matched. Here it is parsed with PostgreSQL's array syntax. A text parameter that is no value
//! of its type is refused as PostgreSQL refuses it, naming the parameter and the fix.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion_postgres::pgwire;
use pgwire::api::portal::Portal;
use pgwire::api::results::FieldFormat;
use pgwire::error::{ErrorInfo, PgWireError};

/// `params` with every text-format parameter that arrow-pg decoded as a list of text read
/// again from its literal.
pub(super) fn text_arrays<S>(portal: &Portal<S>, params: ParamValues) -> ParamValues {
    let ParamValues::List(mut values) = params else { return params };
    for (i, value) in values.iter_mut().enumerate() {
        let is_text_list = matches!(&value.value, ScalarValue::List(list) if list.value_type() == DataType::Utf8);
        if !is_text_list || portal.parameter_format.format_for(i) != FieldFormat::Text {
            continue;
        }
        let Some(Some(bytes)) = portal.parameters.get(i) else { continue };
        let Some(items) = std::str::from_utf8(bytes).ok().and_then(array_literal) else { continue };
        let items: Vec<ScalarValue> = items.into_iter().map(ScalarValue::Utf8).collect();
        value.value = ScalarValue::List(ScalarValue::new_list_nullable(&items, &DataType::Utf8));
    }
    ParamValues::List(values)
}

/// When the parameters cannot be decoded, the first text parameter that is no value of its
/// type, told as PostgreSQL tells it (SQLSTATE 22P02) with the parameter's number and the fix;
/// the decoder's own message ("invalid digit found in string") names neither.
pub(super) fn refusal<S>(portal: &Portal<S>, types: &[Option<DataType>]) -> Option<PgWireError> {
    types.iter().enumerate().find_map(|(i, to)| {
        let to = to.as_ref()?;
        if portal.parameter_format.format_for(i) != FieldFormat::Text || matches!(to, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) {
            return None;
        }
        let text = std::str::from_utf8(portal.parameters.get(i)?.as_ref()?).ok()?;
        (!meshwork_query::is_value_of(text, to)).then(|| {
            let (kind, example) = meshwork_query::value_form(to);
            let message = format!(
                "invalid input syntax for type {}: \"{text}\" (parameter ${}); hint: bind {kind}, e.g. {example}",
                meshwork_storage::type_name(to),
                i + 1
            );
            PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), "22P02".to_owned(), message)))
        })
    })
}

/// The elements of a one-dimensional PostgreSQL array literal (`{a, "b c", "d\"e", NULL}`),
/// or `None` when `text` is not one (nested arrays included).
fn array_literal(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    if inner.trim().is_empty() {
        return Some(items);
    }
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let item = if chars.peek() == Some(&'"') {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => item.push(chars.next()?),
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            Some(item)
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '{' | '}' | '"' => return None,
                    '\\' => {
                        chars.next();
                        item.push(chars.next()?);
                        continue;
                    }
                    c => item.push(c),
                }
                chars.next();
            }
            let item = item.trim().to_owned();
            if item.eq_ignore_ascii_case("null") { None } else { Some(item) }
        };
        items.push(item);
        match chars.next() {
            None => return Some(items),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::array_literal;

    fn texts(items: &[Option<&str>]) -> Option<Vec<Option<String>>> {
        Some(items.iter().map(|i| i.map(str::to_owned)).collect())
    }

    #[test]
    fn array_literals_are_read_as_postgresql_reads_them() {
        assert_eq!(array_literal(r#"{"p", "f", "t", "m", "v", "r"}"#), texts(&[Some("p"), Some("f"), Some("t"), Some("m"), Some("v"), Some("r")]));
        assert_eq!(array_literal(r#"{a, "b c" ,"d\"e,f",NULL,"NULL", x\,y}"#), texts(&[Some("a"), Some("b c"), Some("d\"e,f"), None, Some("NULL"), Some("x,y")]));
        assert_eq!(array_literal("{}"), texts(&[]));
        assert_eq!(array_literal("{{1,2},{3,4}}"), None);
        assert_eq!(array_literal("not an array"), None);
        assert_eq!(array_literal(r#"{"unterminated}"#), None);
    }
}
