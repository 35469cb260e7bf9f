//! The client of set-up calls (health, seed, reset, staleness probes), which are
//! not measured: reqwest in a current-thread runtime of its own, so the bench can
//! call it between runs without being async itself. One per bench, trusting what
//! the measured requests trust (`--ca-cert`, `--insecure`, `SSL_CERT_FILE`).

use std::time::Duration;

use crate::client::TlsOptions;

pub struct SetupClient {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl SetupClient {
    pub fn new(tls: &TlsOptions) -> Result<SetupClient, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the set-up client's runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls.config()?).clone())
            .timeout(Duration::from_secs(30))
            // Set-up calls are seconds apart: a pooled connection may have been
            // closed by the server in between.
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| format!("cannot build the set-up client: {e}"))?;
        Ok(SetupClient { rt, client })
    }

    /// `method url` with headers and a body (JSON); the status and body text.
    pub fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<(u16, String), String> {
        self.rt.block_on(async {
            let mut req = self.client.request(method, url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            let resp = req.send().await.map_err(|e| {
                let cause = crate::client::describe(&e);
                match cause.contains("certificate") {
                    true => format!("{url}: {cause}; {}", crate::client::tls::advice(&cause)),
                    false => format!("{url}: {cause}"),
                }
            })?;
            let status = resp.status().as_u16();
            let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
            Ok((status, text))
        })
    }
}
