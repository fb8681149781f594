//! The sections `serve` adds for operating it: `readonly:` and `metrics:`
//! (regconf extensions). Types and the form of the address only: the
//! address is resolved and bound by `serve`.

use super::keys::section_keys;
use super::{Conv, Sec};
use crate::config::value::Value;
use crate::diagnostics::Severity;
use crate::model;

impl Conv<'_> {
    /// `readonly` and `metrics:`.
    pub(super) fn operate(&mut self, top: &mut Sec<'_>) -> (bool, model::Metrics) {
        // A regconf extension, so no docker-registry truthiness to keep:
        // only a boolean. Anything else is an error and leaves writes on.
        let readonly = match top.get("readonly") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.mismatch(
                    top,
                    "readonly",
                    "`true` or `false`",
                    other,
                    "write `readonly: true` to refuse writes",
                );
                false
            }
        };
        let mut s = self.section(top, "metrics");
        let metrics = model::Metrics {
            listen: self.string(&mut s, "listen").filter(|l| !l.is_empty()),
        };
        self.rest(&s, section_keys("metrics"), &[]);
        if let Some(listen) = &metrics.listen
            && let Some(why) = model::metrics::address_problem(listen)
        {
            self.report(
                "regconf::serve::listen_address",
                Severity::Error,
                &s.path_of("listen"),
                format!("`metrics.listen` `{listen}` is not a HOST:PORT address: {why}"),
                "not HOST:PORT",
                "write it as `127.0.0.1:9090` or `[::1]:9090`",
            );
        }
        (readonly, metrics)
    }
}
