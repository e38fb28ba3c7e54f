//! nhid's shared vocabulary: what every stage of the data flow names the same way.
//!
//! - [`time`]: event time ([`time::Millis`]) and RFC 3339; nothing here reads the clock.
//! - [`event`]: the canonical [`event::AuditEvent`] every decoder produces.
//! - [`vocab`]: severities, the responses detectors ask for, the actions nhid requests and the
//!   reasons a message is dead-lettered: bounded sets that are also metric labels.
//! - [`string_enum!`]: the one way an enum with a bounded string form is written.

pub mod event;
pub mod time;
pub mod vocab;

/// An enum whose variants have a fixed string form: serde, `as_str`, `parse`, `ALL` in
/// declaration order and a dense `index`, from one list. Metric labels, wire formats and
/// configuration values all use the same strings.
///
/// It deserializes from a string only. serde's derived enum asks the parser for an enum, and
/// the JSON parser reports a number there (`"type": 3`) as invalid JSON rather than as the
/// wrong type it is.
#[macro_export]
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        // Its text in every format, as it is read: a binary format (the state snapshots)
        // would otherwise write a variant index and read a string.
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Text;
                impl ::serde::de::Visitor<'_> for Text {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("one of ")?;
                        for (i, text) in [$($text),+].iter().enumerate() {
                            write!(f, "{}`{text}`", if i == 0 { "" } else { ", " })?;
                        }
                        Ok(())
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::parse(v).ok_or_else(|| E::unknown_variant(v, &[$($text),+]))
                    }
                }
                d.deserialize_str(Text)
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// Dense index, for per-variant arrays of counters and thresholds.
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
