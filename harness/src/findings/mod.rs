//! What a run or a bench found, as data: the bench's summary and each A/B's
//! verdict rows, the answer table, the strategies' ranking (computed once, when
//! the bench ends), staleness and the latency profiles' sources. A leaf of the
//! house: `bench` fills it, `report` renders it; it imports neither.

pub mod answer;
pub mod bench;
pub mod capabilities;
pub mod head_to_head;
pub mod ranking;
pub mod strategies;

pub use answer::{Answer, AnswerCell, AnswerRow, ColdRow, OpsRow};
pub use bench::{hold_to_control, rows, status_of, AbStatus, AbSummary, BenchSummary, Row, BENCH_SCHEMA};
pub use capabilities::Capability;
pub use head_to_head::{HeadPair, HeadRow, HeadToHead};
pub use ranking::{Price, Prices, RankRow, Ranking};
pub use strategies::{FigureSource, ProfileSummary, Side, Staleness, StrategyInfo};
