//! Closed sets of keywords (event kinds, outcomes, statuses): one enum each, written to the
//! catalog, the wire and JSON as its keyword, and parsed back in one place.

/// A keyword that is not one of its set's; says which ones are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {set} `{value}`; use one of {expected}")]
pub struct UnknownKeyword {
    /// What the set is called in messages (`event kind`, `audit outcome`, …).
    pub set: &'static str,
    /// The text that was given.
    pub value: String,
    /// The accepted keywords, formatted for the message.
    pub expected: String,
}

impl UnknownKeyword {
    /// The error for `value`, not one of `keywords`.
    pub fn new(set: &'static str, value: &str, keywords: impl IntoIterator<Item = &'static str>) -> Self {
        UnknownKeyword { set, value: value.to_owned(), expected: crate::diagnostic::one_of(keywords) }
    }
}

#[doc(hidden)]
pub use serde as __serde;

/// Declares an enum whose values are written as fixed keywords: `as_str`, `Display`,
/// `FromStr` (with [`UnknownKeyword`]), `ALL`, and serde as the keyword string, so a stored or
/// sent value is exactly the text it was before it was typed.
///
/// ```
/// meshwork_core::keyword_enum! {
///     /// Colours.
///     pub enum Colour ("colour") {
///         /// Red.
///         Red => "red",
///         /// Dark blue.
///         DarkBlue => "dark_blue",
///     }
/// }
/// assert_eq!("dark_blue".parse::<Colour>().unwrap(), Colour::DarkBlue);
/// assert_eq!(Colour::Red.to_string(), "red");
/// ```
#[macro_export]
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident ($set:literal) { $($(#[$vmeta:meta])* $variant:ident => $keyword:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The keyword this value is written as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $keyword,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::keyword::UnknownKeyword;

            fn from_str(text: &str) -> ::std::result::Result<Self, Self::Err> {
                match text {
                    $($keyword => Ok($name::$variant),)+
                    _ => Err($crate::keyword::UnknownKeyword::new($set, text, $name::ALL.iter().map(|v| v.as_str()))),
                }
            }
        }

        /// Compares with a keyword as written.
        impl ::std::cmp::PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl $crate::keyword::__serde::Serialize for $name {
            fn serialize<S: $crate::keyword::__serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::keyword::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::keyword::__serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as $crate::keyword::__serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(<D::Error as $crate::keyword::__serde::de::Error>::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::keyword_enum! {
        /// A test set.
        pub enum Sample ("sample") {
            /// One.
            One => "one",
            /// Two words.
            TwoWords => "two_words",
        }
    }

    #[test]
    fn keywords_round_trip_through_text_and_json() {
        for value in Sample::ALL {
            assert_eq!(value.as_str().parse::<Sample>().unwrap(), *value);
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(serde_json::from_str::<Sample>(&json).unwrap(), *value);
        }
        assert_eq!(serde_json::to_string(&Sample::TwoWords).unwrap(), "\"two_words\"");
    }

    #[test]
    fn an_unknown_keyword_names_the_set_and_the_choices() {
        let error = "three".parse::<Sample>().unwrap_err();
        assert_eq!(error.to_string(), "unknown sample `three`; use one of `one` or `two_words`");
        assert!(serde_json::from_str::<Sample>("\"three\"").is_err());
    }
}
