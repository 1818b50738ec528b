//! runq's `tracing` spans and events, printed by `tracing-subscriber`'s fmt
//! layer: a task submitted inside a `request` span fails three times
//! (retried twice with backoff) and becomes a dead letter; one more panics;
//! one is cancelled before it runs.
//!
//! ```text
//! cargo run --example tracing --features tracing
//! ```

use std::time::Duration;

use runq::{Pool, Retry, Task};
use tracing::Level;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(Level::DEBUG)
        .with_thread_names(true)
        .with_ansi(false)
        .init();
    // Keep the default panic message out of the log: runq reports it.
    std::panic::set_hook(Box::new(|_| {}));

    let pool = Pool::builder()
        .workers(2)
        .thread_name("demo")
        .on_dead_letter(|d| println!("dead-letter hook: {d:?}"))
        .build()?;

    let request = tracing::info_span!("request", order = 17);
    let (charge, boom, later) = request.in_scope(|| -> Result<_, runq::SubmitError> {
        let mut tries = 0;
        let charge = pool.submit_task(
            Task::fallible(move || {
                tries += 1;
                Err::<(), _>(format!("card declined (try {tries})"))
            })
            .name("charge-card")
            .key("order-17")
            .retry(Retry::exponential(3, Duration::from_millis(5))),
        )?;
        let boom =
            pool.submit_task(Task::new(|| -> u32 { panic!("index out of range") }).name("resize"))?;
        let later = pool.submit_task(
            Task::new(|| ())
                .name("newsletter")
                .delay(Duration::from_secs(60)),
        )?;
        Ok((charge, boom, later))
    })?;
    later.cancel();
    println!("charge-card: {:?}", charge.wait());
    println!("resize: {:?}", boom.wait());
    pool.shutdown();
    Ok(())
}
