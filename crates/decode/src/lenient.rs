//! Readers for optional fields whose type varies in the wild: real exports and the samples
//! detection teams write by hand disagree on shapes (a list or a lone string, a number or a
//! numeric string, an object, `null` or a stringified dict). A value of the wrong type reads as
//! absent, and is skipped by the parser, instead of failing the record; only the essential
//! fields of a format (read with [`strict_map`] or `nhid_model::event::borrowed_opt`) dead-letter it.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Empty strings in the data mean absent (`"accessKeyId": ""` on a root console event).
pub fn nonempty<'a>(s: Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
    s.filter(|s| !s.is_empty())
}

/// What a lenient reader makes of each JSON shape. A shape it does not name reads as absent
/// (`Default`); objects and lists it does not name are skipped unread.
pub trait Read<'de>: Sized {
    type Value: Default;
    fn bool(self, _: bool) -> Self::Value {
        Self::Value::default()
    }
    fn i64(self, _: i64) -> Self::Value {
        Self::Value::default()
    }
    fn u64(self, _: u64) -> Self::Value {
        Self::Value::default()
    }
    fn f64(self, _: f64) -> Self::Value {
        Self::Value::default()
    }
    fn str(self, _: &str) -> Self::Value {
        Self::Value::default()
    }
    /// A string the value can borrow from the message; copied through `str` unless overridden.
    fn borrowed_str(self, v: &'de str) -> Self::Value {
        self.str(v)
    }
    fn null(self) -> Self::Value {
        Self::Value::default()
    }
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| Self::Value::default())
    }
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| Self::Value::default())
    }
}

/// Reads one value of any shape with `reader`; `expecting` names what it reads in the
/// parser's message, should a shape no reader can skip ever turn up.
pub fn read<'de, D: Deserializer<'de>, R: Read<'de>>(
    d: D,
    expecting: &'static str,
    reader: R,
) -> Result<R::Value, D::Error> {
    d.deserialize_any(Reader(reader, expecting))
}

/// The serde visitor behind every [`Read`]: each shape goes to the reader's method for it.
struct Reader<R>(R, &'static str);

impl<'de, R: Read<'de>> Visitor<'de> for Reader<R> {
    type Value = R::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.1)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.0.bool(v))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.0.i64(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.0.u64(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.0.f64(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.str(v))
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.borrowed_str(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.null())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.null())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.seq(seq)
    }
}

pub fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

pub fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A string, borrowed where the input allows; any other type reads as absent.
/// (Essential strings use `nhid_model::event::borrowed_opt`, which refuses other types.)
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> Read<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn str(self, v: &str) -> Self::Value {
            Some(Cow::Owned(v.to_owned()))
        }
        fn borrowed_str(self, v: &'de str) -> Self::Value {
            Some(Cow::Borrowed(v))
        }
    }
    read(d, "a string", Text)
}

/// [`string`], with an empty string absent too.
pub fn nonempty_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    string(d).map(nonempty)
}

/// A list element read with [`string`], for readers that walk lists of strings.
pub struct Str<'a>(pub Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string(d).map(Str)
    }
}

/// An object read as `T`; anything else is absent.
pub fn map<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct Object<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Read<'de> for Object<T> {
        type Value = Option<T>;
        fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    read(d, "an object", Object(PhantomData))
}

/// An essential object: `null` reads as absent, any other non-object (an array too) is a
/// wrong type.
pub use nhid_model::event::optional_object as strict_map;

/// The value `pick` finds in the first object of a list that has one (`resources[]`,
/// `target[]`, a delegation chain). Elements that are not objects are skipped (some samples
/// hold stringified dicts), and so is a value that is not a list.
pub fn first_object<'de, D, T, V>(
    d: D,
    expecting: &'static str,
    pick: impl Fn(T) -> Option<V>,
) -> Result<Option<V>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Element<T>(Option<T>);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Element<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            map(d).map(Element)
        }
    }
    struct First<T, F> {
        pick: F,
        element: PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>, V, F: Fn(T) -> Option<V>> Read<'de> for First<T, F> {
        type Value = Option<V>;
        fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut first = None;
            while let Some(Element(element)) = seq.next_element::<Element<T>>()? {
                if first.is_none() {
                    first = element.and_then(&self.pick);
                }
            }
            Ok(first)
        }
    }
    read(d, expecting, First { pick, element: PhantomData })
}

/// A non-negative number; a fraction is truncated.
pub fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Number;
    impl Read<'_> for Number {
        type Value = Option<u64>;
        fn u64(self, v: u64) -> Self::Value {
            Some(v)
        }
        fn i64(self, v: i64) -> Self::Value {
            u64::try_from(v).ok()
        }
        fn f64(self, v: f64) -> Self::Value {
            (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
        }
    }
    read(d, "a number", Number)
}

/// `true` or `"true"` (CloudTrail writes booleans as strings in `sessionContext`).
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Flag;
    impl Read<'_> for Flag {
        type Value = bool;
        fn bool(self, v: bool) -> bool {
            v
        }
        fn str(self, v: &str) -> bool {
            v.eq_ignore_ascii_case("true")
        }
    }
    read(d, "a boolean", Flag)
}
