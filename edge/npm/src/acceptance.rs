//! `Acceptance`: a replica's acceptance rules (the core's [`wire::Acceptance`]) for JS —
//! the service's epoch, the message's signed age and the high-water mark — with the mark
//! as text a JS store can keep: `tg1:<epoch, 32 hex digits>:<sequence>`.

use tollgate_core::wire::{self, HighWater};
use wasm_bindgen::prelude::*;

use crate::error::BindingError;

/// The mark's text form, version 1.
const PREFIX: &str = "tg1:";

/// A replica's acceptance rules and its high-water mark.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct Acceptance {
    inner: wire::Acceptance,
}

#[wasm_bindgen]
impl Acceptance {
    /// Rules refusing messages created more than `maxAgeSeconds` ago; `mark` (a
    /// `highWaterMark` text saved before, or null) resumes from a persisted position.
    #[wasm_bindgen(constructor)]
    pub fn new(max_age_seconds: f64, mark: Option<String>) -> Result<Acceptance, JsValue> {
        if !(max_age_seconds.is_finite() && max_age_seconds >= 0.0) {
            return Err(BindingError::Argument("maxAgeSeconds must be a non-negative number").into());
        }
        let max_age = max_age_seconds.floor() as u64;
        let inner = match mark {
            None => wire::Acceptance::new(max_age),
            Some(text) => wire::Acceptance::resume(max_age, parse_mark(&text)?),
        };
        Ok(Acceptance { inner })
    }

    /// The newest position accepted, as text to persist (`tg1:<epoch>:<seq>`), or null.
    #[wasm_bindgen(getter, js_name = highWaterMark)]
    pub fn high_water_mark(&self) -> JsValue {
        self.inner.high_water().map_or(JsValue::NULL, |m| JsValue::from_str(&format_mark(&m)))
    }

    /// The epoch followed (32 hex digits), or null before the first snapshot.
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> JsValue {
        self.inner.high_water().map_or(JsValue::NULL, |m| JsValue::from_str(&hex(&m.epoch)))
    }

    /// The staleness bound, seconds.
    #[wasm_bindgen(getter, js_name = maxAgeSeconds)]
    pub fn max_age_seconds(&self) -> f64 {
        self.inner.max_age_seconds() as f64
    }

    /// Lets the next snapshot come from another epoch or below the mark (after the
    /// service's data directory was replaced or restored); ends with that snapshot.
    pub fn rebootstrap(&mut self) {
        self.inner.rebootstrap();
    }

    /// Whether `rebootstrap()` is in effect.
    #[wasm_bindgen(getter)]
    pub fn rebootstrapping(&self) -> bool {
        self.inner.is_rebootstrapping()
    }
}

impl Acceptance {
    /// The core rules, mutably.
    pub fn core_mut(&mut self) -> &mut wire::Acceptance {
        &mut self.inner
    }
}

fn format_mark(m: &HighWater) -> String {
    format!("{PREFIX}{}:{}", hex(&m.epoch), m.seq)
}

fn parse_mark(text: &str) -> Result<HighWater, BindingError> {
    const BAD: BindingError =
        BindingError::Argument("a high-water mark is text of the form tg1:<32 hex digits>:<sequence number>");
    let rest = text.strip_prefix(PREFIX).ok_or(BAD)?;
    let (epoch_hex, seq) = rest.split_once(':').ok_or(BAD)?;
    if epoch_hex.len() != 32 || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BAD);
    }
    let mut epoch = [0u8; 16];
    for (i, byte) in epoch.iter_mut().enumerate() {
        *byte = u8::from_str_radix(epoch_hex.get(2 * i..2 * i + 2).ok_or(BAD)?, 16).map_err(|_| BAD)?;
    }
    let seq = seq.parse::<u64>().map_err(|_| BAD)?;
    Ok(HighWater { epoch, seq })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_bad_text_is_refused() {
        let m = HighWater { epoch: [0xab; 16], seq: 42 };
        let text = format_mark(&m);
        assert_eq!(text, format!("tg1:{}:42", "ab".repeat(16)));
        assert_eq!(parse_mark(&text).unwrap(), m);
        assert_eq!(parse_mark(&format!("tg1:{}:18446744073709551615", "00".repeat(16))).unwrap().seq, u64::MAX);
        for bad in [
            "",
            "42",
            "tg1:",
            "tg2:00000000000000000000000000000000:1",
            "tg1:0000000000000000000000000000000:1",
            "tg1:000000000000000000000000000000000:1",
            "tg1:0000000000000000000000000000000g:1",
            "tg1:00000000000000000000000000000000:",
            "tg1:00000000000000000000000000000000:-1",
            "tg1:00000000000000000000000000000000:+1",
            "tg1:00000000000000000000000000000000:18446744073709551616",
            "tg1:ééééééééééééééé0:1",
        ] {
            assert_eq!(parse_mark(bad).unwrap_err().code(), "INVALID_ARGUMENT", "{bad:?}");
        }
    }
}
