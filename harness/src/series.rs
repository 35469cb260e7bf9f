//! Series names: which requests a histogram holds. One type builds and parses
//! every name; result files, comparisons and thresholds hold its text form:
//!
//! | key | text |
//! |---|---|
//! | every request | `*` |
//! | one step | `step:<name>` |
//! | one tag | `tag:<name>` |
//! | one cache layer's outcome (from `x-cache`) | `cache:<layer>=<outcome>` |
//! | a Server-Timing entry of any of these | `<series> server:<entry>` |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which requests, before any Server-Timing entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Series {
    All,
    Step(String),
    Tag(String),
    Cache { layer: String, outcome: String },
}

/// A series and, for the server's own timings, the Server-Timing entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub series: Series,
    /// `Some(entry)`: the series' Server-Timing `entry` durations, not latencies.
    pub server: Option<String>,
}

/// The text of [`Series::All`], for lookups in maps keyed by text.
pub const ALL_TEXT: &str = "*";
const SERVER_SEPARATOR: &str = " server:";

impl SeriesKey {
    pub fn all() -> SeriesKey {
        Series::All.into()
    }
    pub fn step(name: &str) -> SeriesKey {
        Series::Step(name.to_owned()).into()
    }
    pub fn tag(name: &str) -> SeriesKey {
        Series::Tag(name.to_owned()).into()
    }
    pub fn cache(layer: &str, outcome: &str) -> SeriesKey {
        Series::Cache { layer: layer.to_owned(), outcome: outcome.to_owned() }.into()
    }

    /// This series' Server-Timing `entry`.
    pub fn server_timing(&self, entry: &str) -> SeriesKey {
        SeriesKey { series: self.series.clone(), server: Some(entry.to_owned()) }
    }

    /// A Server-Timing series: durations the server reports, not client latencies.
    pub fn is_server_side(&self) -> bool {
        self.server.is_some()
    }

    pub fn is_all(&self) -> bool {
        self.series == Series::All
    }

    /// `*` or a tag: the series the verdicts and headline tables are about.
    pub fn is_headline(&self) -> bool {
        matches!(self.series, Series::All | Series::Tag(_))
    }

    /// `*`, a step or a tag: what a comparison covers (cache outcomes split the
    /// arms unevenly, so they are not compared).
    pub fn is_comparable(&self) -> bool {
        !matches!(self.series, Series::Cache { .. })
    }

    /// The name a person reads: `all requests`, the tag's or step's name, `layer=outcome`.
    pub fn label(&self) -> String {
        match &self.series {
            Series::All => "all requests".to_owned(),
            Series::Step(n) => format!("step {n}"),
            Series::Tag(n) => n.clone(),
            Series::Cache { layer, outcome } => format!("{layer}={outcome}"),
        }
    }

    /// The text form without the `tag:` prefix (`auth`, `auth server:bot`, `*`,
    /// `step:login`): tags are what people name series by.
    pub fn short_name(&self) -> String {
        let text = self.to_string();
        match self.series {
            Series::Tag(_) => text["tag:".len()..].to_owned(),
            _ => text,
        }
    }

    /// The text form, parsed; `None` for text that is no series name.
    pub fn parse(text: &str) -> Option<SeriesKey> {
        text.parse().ok()
    }
}

impl From<Series> for SeriesKey {
    fn from(series: Series) -> SeriesKey {
        SeriesKey { series, server: None }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.series {
            Series::All => f.write_str(ALL_TEXT)?,
            Series::Step(n) => write!(f, "step:{n}")?,
            Series::Tag(n) => write!(f, "tag:{n}")?,
            Series::Cache { layer, outcome } => write!(f, "cache:{layer}={outcome}")?,
        }
        match &self.server {
            Some(entry) => write!(f, "{SERVER_SEPARATOR}{entry}"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a series name: expected *, step:NAME, tag:NAME or cache:LAYER=OUTCOME, optionally followed by \" server:ENTRY\"")]
pub struct BadSeriesName(pub String);

impl FromStr for SeriesKey {
    type Err = BadSeriesName;

    fn from_str(text: &str) -> Result<SeriesKey, BadSeriesName> {
        let bad = || BadSeriesName(text.to_owned());
        let (base, server) = match text.split_once(SERVER_SEPARATOR) {
            Some((base, entry)) if !entry.is_empty() => (base, Some(entry.to_owned())),
            Some(_) => return Err(bad()),
            None => (text, None),
        };
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned()).ok_or_else(bad);
        let series = if base == ALL_TEXT {
            Series::All
        } else if let Some(n) = base.strip_prefix("step:") {
            Series::Step(nonempty(n)?)
        } else if let Some(n) = base.strip_prefix("tag:") {
            Series::Tag(nonempty(n)?)
        } else if let Some(rest) = base.strip_prefix("cache:") {
            let (layer, outcome) = rest.split_once('=').ok_or_else(bad)?;
            Series::Cache { layer: nonempty(layer)?, outcome: nonempty(outcome)? }
        } else {
            return Err(bad());
        };
        Ok(SeriesKey { series, server })
    }
}

/// Compares with a series name's text form (`"tag:auth"`).
impl PartialEq<&str> for SeriesKey {
    fn eq(&self, text: &&str) -> bool {
        SeriesKey::parse(text).as_ref() == Some(self)
    }
}

impl Serialize for SeriesKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SeriesKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeriesKey, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for text in [
            "*",
            "step:login",
            "tag:auth",
            "cache:bot=hit",
            "cache:user-models=miss",
            "tag:auth server:bot",
            "* server:total",
        ] {
            let key: SeriesKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
        }
        assert_eq!(SeriesKey::tag("auth").server_timing("bot").to_string(), "tag:auth server:bot");
        assert_eq!(SeriesKey::cache("bot", "hit").to_string(), "cache:bot=hit");
        assert_eq!(SeriesKey::tag("auth").server_timing("bot").short_name(), "auth server:bot");
        assert_eq!(SeriesKey::all().short_name(), "*");
    }

    #[test]
    fn kinds_and_bad_names() {
        let k: SeriesKey = "tag:auth server:bot".parse().unwrap();
        assert!(k.is_server_side() && k.is_headline());
        assert_eq!(k.series, Series::Tag("auth".into()));
        assert!(!SeriesKey::cache("bot", "hit").is_comparable());
        assert!(SeriesKey::step("x").is_comparable() && !SeriesKey::step("x").is_headline());
        for bad in ["", "auth", "tag:", "cache:bot", "cache:=hit", "tag:a server:"] {
            let e = bad.parse::<SeriesKey>().unwrap_err();
            assert!(e.to_string().contains("not a series name"), "{bad}: {e}");
        }
    }
}
