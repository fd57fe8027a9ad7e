//! Strict JSON for the JS side: the core's parser (UTF-8, no BOM, no duplicate member
//! names at any depth, bounded nesting), so the npm origin middleware reads the edge's
//! assertion exactly as `tollgate-origin` does.

use wasm_bindgen::prelude::*;

/// The JSON text of `bytes` re-serialised when they are one strict JSON object, else
/// `undefined`. `JSON.parse` of the result gives the object.
#[wasm_bindgen(js_name = strictJsonObject)]
pub fn strict_json_object(bytes: &[u8]) -> Option<String> {
    match tollgate_core::parse_strict_json(bytes) {
        Some(v @ serde_json::Value::Object(_)) => serde_json::to_string(&v).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_only_and_no_duplicates() {
        assert_eq!(strict_json_object(br#"{"a":1,"b":[1,2]}"#).as_deref(), Some(r#"{"a":1,"b":[1,2]}"#));
        assert_eq!(strict_json_object(br#"{"a":1,"a":2}"#), None);
        assert_eq!(strict_json_object(br#"{"o":{"x":1,"x":1}}"#), None);
        assert_eq!(strict_json_object(b"[1]"), None);
        assert_eq!(strict_json_object(b"\xef\xbb\xbf{}"), None);
        assert_eq!(strict_json_object(b"{} x"), None);
        assert_eq!(strict_json_object(b"{\"a\":\"\xff\"}"), None);
    }
}
