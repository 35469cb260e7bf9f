//! `{{…}}` templates: compile any text, render what compiles; errors point inside it.
#![no_main]

use harness::scenario::template::{Template, Values, Var};
use libfuzzer_sys::fuzz_target;

struct Fixed(u64);

impl Values for Fixed {
    fn user_field(&self, _var: &Var) -> Option<String> {
        Some("u-1".into())
    }
    fn extracted(&self, name: &str) -> Option<String> {
        (name.len() % 2 == 0).then(|| name.to_owned())
    }
    fn iteration(&self) -> u64 {
        7
    }
    fn random_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
        self.0
    }
    fn list_item(&mut self, name: &str) -> Option<String> {
        Some(format!("item-of-{name}"))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Template::compile(text, &|name| (name == "HOST").then(|| "h".to_owned())) {
        Ok(t) => {
            let _ = t.render(&mut Fixed(1));
            let _ = t.source();
        }
        Err(e) => assert!(e.offset <= text.len(), "offset {} past the end ({})", e.offset, text.len()),
    }
});
