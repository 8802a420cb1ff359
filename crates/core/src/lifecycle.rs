//! Where a product stands for its consumers on a given day — served, deprecated (served with a
//! warning naming its sunset and successor) or sunset (no longer served, data kept until purged)
//! — and the kept majors of a product (`orders_v1` beside `orders`). One source of truth for
//! every interface's warning and every "not found" hint.

use chrono::NaiveDate;

use crate::descriptor::{ProductDescriptor, ProductStatus};
use crate::id::{ProductId, ProductName};

/// A product's state for consumers on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// Served without remarks (`draft` or `active`).
    Served,
    /// Served, and every read is warned.
    Deprecated(Deprecation),
    /// Past its sunset date: no longer served; its data is kept until `meshwork product purge`.
    Sunset(Deprecation),
}

/// What a deprecated product tells its readers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deprecation {
    /// The deprecated product.
    pub product: ProductId,
    /// The first day it is no longer served.
    pub sunset: Option<NaiveDate>,
    /// Where its readers should move.
    pub successor: Option<ProductId>,
}

impl Deprecation {
    /// The warning every read of a deprecated product carries, on every interface.
    pub fn warning(&self) -> String {
        let mut text = format!("`{}` is deprecated", self.product);
        if let Some(sunset) = self.sunset {
            text.push_str(&format!(" and is no longer served from {sunset}"));
        }
        match &self.successor {
            Some(successor) => text.push_str(&format!("; move to `{successor}`")),
            None => text.push_str("; ask its owners what replaces it"),
        }
        text
    }

    /// The hint given, to a principal who could read it, instead of rows once it is sunset.
    pub fn gone(&self) -> String {
        let mut text = format!("`{}` is no longer served", self.product);
        if let Some(sunset) = self.sunset {
            text.push_str(&format!(" since its sunset on {sunset}"));
        }
        match &self.successor {
            Some(successor) => text.push_str(&format!("; read its successor `{successor}`")),
            None => text.push_str("; ask its owners what replaces it"),
        }
        text
    }
}

impl ProductDescriptor {
    /// The product's state for consumers on `today` (UTC): a deprecated product is served while
    /// `today` is before its sunset date; one without a sunset date stays served (with the
    /// warning) until its owners set one or remove it.
    pub fn lifecycle(&self, today: NaiveDate) -> Lifecycle {
        if self.status != ProductStatus::Deprecated {
            return Lifecycle::Served;
        }
        let deprecation = Deprecation { product: self.id(), sunset: self.sunset, successor: self.successor.clone() };
        match self.sunset {
            Some(sunset) if today >= sunset => Lifecycle::Sunset(deprecation),
            _ => Lifecycle::Deprecated(deprecation),
        }
    }

    /// Whether the product is past its sunset on `today`.
    pub fn is_sunset(&self, today: NaiveDate) -> bool {
        matches!(self.lifecycle(today), Lifecycle::Sunset(_))
    }

    /// The major of the descriptor's version (`2` of `2.1.0`); `None` when the version is not
    /// semantic versioning (which the `semver_version` policy reports).
    pub fn major(&self) -> Option<u64> {
        major(&self.version)
    }
}

/// The major of a semantic version (`2` of `2.1.0`, also of `v2.1.0`).
pub fn major(version: &str) -> Option<u64> {
    let version = version.strip_prefix('v').unwrap_or(version);
    let (major, rest) = version.split_once('.')?;
    if rest.split('.').count() < 2 || major.is_empty() || (major.len() > 1 && major.starts_with('0')) {
        return None;
    }
    major.parse().ok()
}

/// A product named `<base>_v<N>`: major `N` of `base` kept side by side with `base`'s newer
/// major. Returns `(base, N)` when the name has that shape; whether `base` exists is the
/// mesh's question ([`crate::mesh::Mesh::check`]).
pub fn kept_major(name: &ProductName) -> Option<(ProductName, u64)> {
    let (base, n) = name.as_str().rsplit_once("_v")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    Some((ProductName::new(base).ok()?, n.parse().ok()?))
}

/// The versioned name major `major` of `base` is served under once a newer major exists.
pub fn kept_major_name(base: &ProductName, major: u64) -> String {
    format!("{base}_v{major}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_and_kept_major_names() {
        assert_eq!(major("2.1.0"), Some(2));
        assert_eq!(major("v10.0.3"), Some(10));
        assert_eq!(major("1.0"), None);
        assert_eq!(major("01.0.0"), None);
        assert_eq!(major("x.y.z"), None);
        let name = |text: &str| ProductName::new(text).unwrap();
        assert_eq!(kept_major(&name("orders_v1")), Some((name("orders"), 1)));
        assert_eq!(kept_major(&name("orders")), None);
        assert_eq!(kept_major(&name("orders_v")), None);
        assert_eq!(kept_major(&name("orders_v01")), None);
        assert_eq!(kept_major_name(&name("orders"), 3), "orders_v3");
    }
}
