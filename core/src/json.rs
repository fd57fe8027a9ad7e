//! Strict JSON: UTF-8, no byte order mark, no duplicate member names at any depth.
//!
//! Built on `serde_json`'s parser (which already rejects a BOM, invalid UTF-8 and
//! trailing garbage); a custom visitor refuses duplicate member names, which
//! `serde_json::Value` would silently resolve to the last one.

use core::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Maximum nesting depth accepted (serde_json's own limit is 128).
const MAX_DEPTH: usize = 64;

/// Parses `bytes` as a strict JSON object.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Map<alloc::string::String, Value>> {
    let v: Strict = serde_json::from_slice(bytes).ok()?;
    match v.0 {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Parses `bytes` as any strict JSON value.
pub(crate) fn parse_value(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Strict>(bytes).ok().map(|s| s.0)
}

struct Strict(Value);

struct StrictVisitor {
    depth: usize,
}

pub(crate) struct Nested(pub(crate) Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor { depth: 0 }).map(Strict)
    }
}

pub(crate) struct Seed {
    pub(crate) depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = Nested;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Nested, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom("json nested too deeply"));
        }
        d.deserialize_any(StrictVisitor { depth: self.depth }).map(Nested)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.into()))
    }
    fn visit_string<E>(self, v: alloc::string::String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = alloc::vec::Vec::new();
        while let Some(Nested(v)) = seq.next_element_seed(Seed { depth: self.depth + 1 })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<alloc::string::String>()? {
            let Nested(v) = map.next_value_seed(Seed { depth: self.depth + 1 })?;
            if out.insert(key, v).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let m = parse_object(br#"{"a":1,"b":[1,2,{"c":null}],"d":"\u00e9"}"#).unwrap();
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(parse_object(br#"{"x":{"a":1,"a":2}}"#).is_none());
        assert!(parse_object(br#"{"x":[{"a":1,"a":2}]}"#).is_none());
        // Escaped spelling of the same name is still a duplicate.
        assert!(parse_object(br#"{"a":1,"\u0061":2}"#).is_none());
    }

    #[test]
    fn rejects_non_objects_bom_and_garbage() {
        assert!(parse_object(b"[1]").is_none());
        assert!(parse_object(b"\xef\xbb\xbf{}").is_none());
        assert!(parse_object(b"{} x").is_none());
        assert!(parse_object(b"{\"a\":\"\xff\"}").is_none());
        assert!(parse_object(b"").is_none());
    }

    #[test]
    fn bounds_nesting() {
        let deep: alloc::string::String = "[".repeat(100) + &"]".repeat(100);
        assert!(parse_value(deep.as_bytes()).is_none());
        let ok: alloc::string::String = "[".repeat(10) + &"]".repeat(10);
        assert!(parse_value(ok.as_bytes()).is_some());
    }
}
