//! `log.level` changed by a reload, as Patroni applies its `log` section on SIGHUP. The
//! binary installs the setter when it builds its subscriber (it owns the filter); the
//! agent calls it after a reload. `RUST_LOG`, when set, wins and the setter is not
//! installed.

use std::sync::OnceLock;

type Setter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

static SETTER: OnceLock<Setter> = OnceLock::new();

/// Called once, by the binary.
pub fn install(setter: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    let _ = SETTER.set(Box::new(setter));
}

/// Applies `level` (a tracing level name) if a setter is installed.
pub(crate) fn set(level: &str) {
    if let Some(s) = SETTER.get() {
        if let Err(e) = s(level) {
            tracing::warn!("reload: log.level {level} not applied: {e}");
        }
    }
}
