//! Identifiers: domain names, product names and the `domain.product` address of a data product.

use std::fmt;
use std::str::FromStr;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name breaks the naming rule.
    #[error("`{0}` is not a valid name; names are snake_case: a lowercase letter, then lowercase letters, digits or `_`, at most 63 characters")]
    Invalid(String),
    /// A product address without a domain part.
    #[error("`{0}` is not a product address; write it as `domain.product`, e.g. `sales.orders`")]
    NotQualified(String),
}

/// Checks the rule shared by domain, product and column names: they become SQL identifiers, so
/// they must never need quoting.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63;
    if valid { Ok(()) } else { Err(NameError::Invalid(name.to_owned())) }
}

/// Checks a column name: any SQL identifier that needs no quoting in most dialects (a letter or
/// `_`, then letters, digits or `_`). Lower snake_case is a governance rule on top of this.
pub fn check_identifier(name: &str) -> Result<(), NameError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some('a'..='z' | 'A'..='Z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63;
    if valid { Ok(()) } else { Err(NameError::Invalid(name.to_owned())) }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Validates and wraps a name.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                check_name(&name)?;
                Ok($ty(name))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(name: String) -> Result<Self, NameError> {
                $ty::new(name)
            }
        }

        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }
    };
}

name_type!(
    /// The name of a business domain, e.g. `sales`; the SQL schema of its products.
    DomainName
);
name_type!(
    /// The name of a data product inside its domain, e.g. `orders`; its SQL table name.
    ProductName
);

/// The stable address of a data product: `domain.product`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductId {
    /// The owning domain.
    pub domain: DomainName,
    /// The product's name inside the domain.
    pub name: ProductName,
}

impl ProductId {
    /// Builds an address from its parts.
    pub fn new(domain: DomainName, name: ProductName) -> Self {
        ProductId { domain, name }
    }
}

impl fmt::Display for ProductId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.domain, self.name)
    }
}

impl FromStr for ProductId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let (domain, name) = s.split_once('.').ok_or_else(|| NameError::NotQualified(s.to_owned()))?;
        Ok(ProductId { domain: DomainName::new(domain)?, name: ProductName::new(name)? })
    }
}

impl TryFrom<String> for ProductId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<ProductId> for String {
    fn from(id: ProductId) -> String {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_sql_identifier_rule() {
        assert!(check_name("orders_v2").is_ok());
        assert!(check_name("Orders").is_err());
        assert!(check_name("2orders").is_err());
        assert!(check_name("order-items").is_err());
        assert!(check_name("").is_err());
        let id: ProductId = "sales.orders".parse().unwrap();
        assert_eq!(id.to_string(), "sales.orders");
        assert_eq!(
            "orders".parse::<ProductId>().unwrap_err().to_string(),
            "`orders` is not a product address; write it as `domain.product`, e.g. `sales.orders`"
        );
    }
}
