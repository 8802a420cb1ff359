//! Timestamps as the catalog writes them: RFC 3339 in UTC with microseconds and `Z`
//! (`2026-12-03T13:45:00.123456Z`), one fixed width so stored text sorts as time does, on
//! every backend.

use chrono::{DateTime, SecondsFormat, Utc};

/// `at` as stored and shown.
pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A stored or given RFC 3339 timestamp, in UTC.
pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// Serde for a timestamp field, as [`format`] writes it.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `at` as [`super::format`] does.
    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(at))
    }

    /// Reads any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        super::parse(&text).map_err(|e| serde::de::Error::custom(format!("bad timestamp `{text}`: {e}")))
    }
}

/// Serde for an optional timestamp field, as [`format`] writes it (`null` when absent).
pub mod rfc3339_option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `at` as [`super::format`] does, or `null`.
    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_str(&super::format(at)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads any RFC 3339 timestamp, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text = Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.map(|text| super::parse(&text).map_err(|e| serde::de::Error::custom(format!("bad timestamp `{text}`: {e}")))).transpose()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_written_at_one_width_and_read_back() {
        let at = super::parse("2026-12-03T14:45:00.1+01:00").unwrap();
        assert_eq!(super::format(&at), "2026-12-03T13:45:00.100000Z");
        assert_eq!(super::parse(&super::format(&at)).unwrap(), at);
    }
}
