//! `#[serde(with = "crate::nullable")]` for an `f64` that may be NaN or infinite
//! (a metric of an arm with no successes, an interval with no resamples): JSON
//! has no such numbers and serde_json writes `null`, which a plain `f64` field
//! cannot read back. Written as `null`, read back as NaN.

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct T {
        #[serde(with = "super")]
        x: f64,
    }

    #[test]
    fn nan_goes_out_as_null_and_comes_back_as_nan() {
        let text = serde_json::to_string(&T { x: f64::NAN }).unwrap();
        assert_eq!(text, r#"{"x":null}"#);
        assert!(serde_json::from_str::<T>(&text).unwrap().x.is_nan());
        let text = serde_json::to_string(&T { x: 1.5 }).unwrap();
        assert_eq!(serde_json::from_str::<T>(&text).unwrap().x, 1.5);
    }
}
