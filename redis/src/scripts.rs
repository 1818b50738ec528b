//! The Lua scripts: every step where several keys must change together.
//!
//! Each script lives in its own file under `src/scripts/`, opening with what
//! `KEYS` and `ARGV` hold, what it changes atomically and why it must be one
//! step. `common.lua` (helpers: the pickup step, the terminal write) is
//! prepended to each. Scripts are loaded once per connection
//! ([`Scripts::load`]) and called by SHA1 (`EVALSHA`), also inside
//! pipelines; a `NOSCRIPT` reply (Redis restarted without them) makes the
//! caller load them again and retry.

use redis::{Cmd, Connection, RedisResult, Script};
use std::sync::OnceLock;

const COMMON: &str = include_str!("scripts/common.lua");

/// The compiled set of scripts (their SHA1s computed once per process).
pub(crate) struct Scripts {
    pub(crate) enqueue: Script,
    pub(crate) take: Script,
    pub(crate) start: Script,
    pub(crate) finish: Script,
    pub(crate) promote: Script,
    pub(crate) reclaim: Script,
    pub(crate) cancel: Script,
    pub(crate) dead_letter: Script,
    pub(crate) requeue_dead: Script,
    pub(crate) forget_consumers: Script,
}

fn with_common(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

impl Scripts {
    /// The process-wide set.
    pub(crate) fn get() -> &'static Scripts {
        static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
        SCRIPTS.get_or_init(|| Scripts {
            enqueue: with_common(include_str!("scripts/enqueue.lua")),
            take: with_common(include_str!("scripts/take.lua")),
            start: with_common(include_str!("scripts/start.lua")),
            finish: with_common(include_str!("scripts/finish.lua")),
            promote: with_common(include_str!("scripts/promote.lua")),
            reclaim: with_common(include_str!("scripts/reclaim.lua")),
            cancel: with_common(include_str!("scripts/cancel.lua")),
            dead_letter: with_common(include_str!("scripts/dead_letter.lua")),
            requeue_dead: with_common(include_str!("scripts/requeue_dead.lua")),
            forget_consumers: with_common(include_str!("scripts/forget_consumers.lua")),
        })
    }

    fn all(&self) -> [&Script; 10] {
        [
            &self.enqueue,
            &self.take,
            &self.start,
            &self.finish,
            &self.promote,
            &self.reclaim,
            &self.cancel,
            &self.dead_letter,
            &self.requeue_dead,
            &self.forget_consumers,
        ]
    }

    /// Loads every script into the server behind `con` (SCRIPT LOAD).
    pub(crate) fn load(&self, con: &mut Connection) -> RedisResult<()> {
        for s in self.all() {
            s.load(con)?;
        }
        Ok(())
    }
}

/// `EVALSHA <sha> <keys.len()> keys...` for `script`; the caller appends
/// the arguments. Runs alone or inside a pipeline.
pub(crate) fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for k in keys {
        cmd.arg(*k);
    }
    cmd
}

/// True when `e` says the server lacks a script (restarted, flushed).
pub(crate) fn is_noscript(e: &redis::RedisError) -> bool {
    e.code() == Some("NOSCRIPT")
}
