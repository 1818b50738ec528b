//! The `tracing` feature: a capturing subscriber records every span and
//! event, and each test checks those of its own tasks (told apart by their
//! names): the attempt spans with their fields and cross-thread parent, and
//! the events for success, retry, failure, dead letter, panic, expiry and
//! cancel. Run with `cargo test --features tracing --test tracing`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use runq::{Priority, Retry, Task, TaskError};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

mod common;

use common::limit_10s::{quiet_intentional_panics, INTENTIONAL};
use common::limit_30s::{finish, occupy_worker, pool};

#[derive(Debug, Clone)]
struct SpanRec {
    seq: u64,
    name: String,
    target: String,
    level: Level,
    parent: Option<u64>,
    thread: String,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct EventRec {
    level: Level,
    target: String,
    message: String,
    span: Option<u64>,
    fields: BTreeMap<String, String>,
}

static SPANS: Mutex<Vec<SpanRec>> = Mutex::new(Vec::new());
static EVENTS: Mutex<Vec<EventRec>> = Mutex::new(Vec::new());
static SEQ: AtomicU64 = AtomicU64::new(1);

/// A span's own number (the registry reuses ids once spans close).
struct Seq(u64);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span is registered");
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<Seq>().map(|s| s.0));
        span.extensions_mut().insert(Seq(seq));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        SPANS.lock().unwrap().push(SpanRec {
            seq,
            name: attrs.metadata().name().to_owned(),
            target: attrs.metadata().target().to_owned(),
            level: *attrs.metadata().level(),
            parent,
            thread: std::thread::current().name().unwrap_or("").to_owned(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(seq) = ctx
            .span(id)
            .and_then(|s| s.extensions().get::<Seq>().map(|s| s.0))
        else {
            return;
        };
        let mut spans = SPANS.lock().unwrap();
        if let Some(rec) = spans.iter_mut().find(|r| r.seq == seq) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Seq>().map(|s| s.0));
        EVENTS.lock().unwrap().push(EventRec {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: fields.remove("message").unwrap_or_default(),
            span,
            fields,
        });
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .expect("no other global subscriber");
    });
}

/// The attempt spans of the task named `name`, in order of attempt.
fn spans_of(name: &str) -> Vec<SpanRec> {
    let mut v: Vec<_> = SPANS
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.fields.get("task.name").map(String::as_str) == Some(name))
        .cloned()
        .collect();
    v.sort_by_key(|s| s.fields["attempt"].parse::<u32>().unwrap());
    v
}

/// The events of the task named `name`, in the order they were raised.
fn events_of(name: &str) -> Vec<EventRec> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.fields.get("task.name").map(String::as_str) == Some(name))
        .cloned()
        .collect()
}

fn messages(events: &[EventRec]) -> Vec<(Level, &str)> {
    events
        .iter()
        .map(|e| (e.level, e.message.as_str()))
        .collect()
}

#[test]
fn a_successful_task_runs_in_one_span_whose_parent_is_the_submitting_span() {
    install();
    let pool = pool(2);
    let request = tracing::info_span!("request", order = 17);
    let h = request
        .in_scope(|| pool.submit_task(Task::new(|| 5).name("ok-task").priority(Priority::High)))
        .unwrap();
    let id = h.id();
    assert_eq!(finish(h).unwrap(), 5);
    pool.shutdown();
    let spans = spans_of("ok-task");
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(
        (s.name.as_str(), s.target.as_str(), s.level),
        ("task", "runq", Level::INFO)
    );
    assert_eq!(s.fields["task.id"], id.as_u64().to_string());
    assert_eq!(s.fields["priority"], "High");
    assert_eq!(s.fields["attempt"], "1");
    assert!(
        s.thread.starts_with("runq-"),
        "ran on a worker: {}",
        s.thread
    );
    let parent = SPANS
        .lock()
        .unwrap()
        .iter()
        .find(|p| Some(p.seq) == s.parent)
        .cloned()
        .expect("the attempt span has a parent");
    assert_eq!(parent.name, "request");
    assert_ne!(parent.thread, s.thread);
    assert!(events_of("ok-task").is_empty());
}

#[test]
fn a_task_without_a_submitting_span_has_a_root_attempt_span() {
    install();
    let pool = pool(1);
    finish(
        pool.submit_task(Task::new(|| ()).name("root-task"))
            .unwrap(),
    )
    .unwrap();
    pool.shutdown();
    let spans = spans_of("root-task");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].parent, None);
}

#[test]
fn each_retry_is_a_warning_inside_the_failed_attempt_and_each_attempt_a_span() {
    install();
    let pool = pool(2);
    let mut tries = 0;
    let h = pool
        .submit_task(
            Task::fallible(move || {
                tries += 1;
                if tries < 3 {
                    Err(format!("flaky {tries}"))
                } else {
                    Ok(tries)
                }
            })
            .name("retry-task")
            .retry(Retry::fixed(5, Duration::from_millis(1))),
        )
        .unwrap();
    assert_eq!(finish(h).unwrap(), 3);
    pool.shutdown();
    let spans = spans_of("retry-task");
    let attempts: Vec<_> = spans.iter().map(|s| s.fields["attempt"].clone()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let events = events_of("retry-task");
    assert_eq!(
        messages(&events),
        [
            (Level::WARN, "retry scheduled"),
            (Level::WARN, "retry scheduled")
        ]
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.target, "runq");
        assert_eq!(e.fields["error"], format!("flaky {}", i + 1));
        assert_eq!(e.fields["attempt"], (i + 1).to_string());
        assert!(e.fields.contains_key("backoff"));
        assert_eq!(e.span, Some(spans[i].seq), "inside attempt {}", i + 1);
    }
}

#[test]
fn a_task_that_fails_for_good_logs_failed_then_dead_letter() {
    install();
    let pool = pool(1);
    let h = pool
        .submit_task(
            Task::fallible(|| Err::<(), _>("disk full"))
                .name("dead-task")
                .key("k-dead")
                .retry(Retry::fixed(2, Duration::from_millis(1))),
        )
        .unwrap();
    assert!(matches!(
        finish(h),
        Err(TaskError::Failed { attempts: 2, .. })
    ));
    pool.shutdown();
    let spans = spans_of("dead-task");
    assert_eq!(spans.len(), 2);
    let events = events_of("dead-task");
    assert_eq!(
        messages(&events),
        [
            (Level::WARN, "retry scheduled"),
            (Level::ERROR, "task failed"),
            (Level::ERROR, "dead letter"),
        ]
    );
    assert_eq!(events[1].fields["error"], "disk full");
    assert_eq!(events[1].fields["attempts"], "2");
    assert_eq!(events[2].fields["key"], "k-dead");
    assert_eq!(events[2].fields["attempts"], "2");
    assert_eq!(events[2].fields["error"], "disk full");
    assert!(events[1..].iter().all(|e| e.span == Some(spans[1].seq)));
}

#[test]
fn a_panic_is_an_error_event_with_its_message() {
    install();
    quiet_intentional_panics();
    let pool = pool(1);
    let h = pool
        .submit_task(Task::new(|| -> () { panic!("{INTENTIONAL}: kaboom") }).name("panic-task"))
        .unwrap();
    assert!(matches!(finish(h), Err(TaskError::Panicked(_))));
    pool.shutdown();
    let events = events_of("panic-task");
    // The panic event's message is the panic's message.
    let text = format!("{INTENTIONAL}: kaboom");
    assert_eq!(
        messages(&events),
        [
            (Level::ERROR, text.as_str()),
            (Level::ERROR, "task failed"),
            (Level::ERROR, "dead letter"),
        ]
    );
    assert_eq!(events[0].fields["attempt"], "1");
    assert_eq!(events[0].span, Some(spans_of("panic-task")[0].seq));
}

#[test]
fn expiry_and_cancel_are_events_under_the_submitting_span_without_an_attempt() {
    install();
    let pool = pool(1);
    let (blocker, release) = occupy_worker(&pool);
    let request = tracing::info_span!("request", order = 99);
    let (late, cancelled) = request.in_scope(|| {
        let late = pool
            .submit_task(
                Task::new(|| ())
                    .name("late-task")
                    .deadline(Duration::from_millis(1)),
            )
            .unwrap();
        let cancelled = pool
            .submit_task(
                Task::new(|| ())
                    .name("cancel-task")
                    .delay(Duration::from_secs(3600)),
            )
            .unwrap();
        (late, cancelled)
    });
    assert!(cancelled.cancel());
    std::thread::sleep(Duration::from_millis(5));
    drop(release);
    finish(blocker).unwrap();
    assert!(matches!(finish(late), Err(TaskError::Expired)));
    assert!(matches!(finish(cancelled), Err(TaskError::Cancelled)));
    pool.shutdown();
    let request_seq = SPANS
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.name == "request" && s.fields.get("order").map(String::as_str) == Some("99"))
        .map(|s| s.seq);
    let late = events_of("late-task");
    assert_eq!(messages(&late), [(Level::WARN, "task expired")]);
    assert_eq!(late[0].span, request_seq);
    let cancel = events_of("cancel-task");
    assert_eq!(messages(&cancel), [(Level::DEBUG, "task cancelled")]);
    assert_eq!(cancel[0].span, request_seq);
    assert!(spans_of("late-task").is_empty() && spans_of("cancel-task").is_empty());
}
