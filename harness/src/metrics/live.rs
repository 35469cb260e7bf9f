//! `--metrics-listen ADDR`: the figures of the runs going on, served for a
//! Prometheus scrape at `GET /metrics` (anything else is 404). Each sending thread
//! publishes its own figures once a second into its [`Slot`]; a scrape adds the
//! threads of each run together. Runs that ended stay on the board, so counters
//! never go backwards while the process lives (a bench's scenarios follow each
//! other under their own `scenario` label).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::Figures;

/// Every run's and thread's latest figures.
#[derive(Clone, Default)]
pub struct Board {
    /// (run, thread) → figures; a run is its result file's stem.
    figures: Arc<Mutex<BTreeMap<(String, usize), Figures>>>,
}

/// Where one thread of one run publishes.
pub struct Slot {
    board: Board,
    key: (String, usize),
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

impl Board {
    pub fn slot(&self, run: &str, thread: usize) -> Slot {
        Slot { board: self.clone(), key: (run.to_owned(), thread) }
    }

    /// The exposition of everything on the board, threads of a run added up.
    pub fn render(&self) -> String {
        let figures = self.figures.lock().unwrap_or_else(|e| e.into_inner());
        let mut runs: BTreeMap<&str, Figures> = BTreeMap::new();
        for ((run, _), f) in figures.iter() {
            match runs.get_mut(run.as_str()) {
                Some(sum) => sum.add(f),
                None => {
                    runs.insert(run, f.clone());
                }
            }
        }
        super::render(&runs.into_values().collect::<Vec<_>>())
    }

    /// Serves the board at `http://ADDR/metrics` on a thread of its own, for as
    /// long as the process lives. Returns the address bound (port 0 picks one).
    pub fn serve(&self, addr: &str) -> Result<std::net::SocketAddr, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| {
            format!("--metrics-listen {addr}: cannot listen there: {e} (give HOST:PORT, e.g. 127.0.0.1:9464)")
        })?;
        let bound =
            server.server_addr().to_ip().ok_or_else(|| format!("--metrics-listen {addr}: not an IP address"))?;
        let board = self.clone();
        std::thread::Builder::new()
            .name("harness-metrics".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    let response = if request.url().split('?').next() == Some("/metrics") {
                        let header = tiny_http::Header::from_bytes("Content-Type", super::CONTENT_TYPE)
                            .expect("a static header");
                        tiny_http::Response::from_string(board.render()).with_header(header)
                    } else {
                        tiny_http::Response::from_string("only /metrics is served here\n").with_status_code(404)
                    };
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
        Ok(bound)
    }
}

impl Slot {
    pub fn publish(&self, figures: Figures) {
        let mut all = self.board.figures.lock().unwrap_or_else(|e| e.into_inner());
        all.insert(self.key.clone(), figures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_of_a_run_add_up() {
        let board = Board::default();
        let f = Figures { scenario: "s".into(), started: 3, ..Default::default() };
        board.slot("run", 0).publish(f.clone());
        board.slot("run", 1).publish(f);
        assert!(board.render().contains(r#"harness_iterations_total{scenario="s",state="started"} 6"#));
    }
}
