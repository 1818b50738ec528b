//! How a program that uses runq tests its own code: the function under test
//! takes a `&Pool`; production passes a pool with workers, the test passes
//! a manual pool and decides when tasks run and what time it is.

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runq::{Handle, Jitter, Pool, Retry, SubmitError, Task};

// ---- application code --------------------------------------------------

/// Where mail goes. The test's mailer records, and can be told to fail.
trait Mailer: Send + Sync + 'static {
    fn send(&self, to: &str, what: &str) -> Result<(), String>;
}

const FOLLOW_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
const MAIL_BACKOFF: Duration = Duration::from_secs(60);

/// Onboards `user`: a welcome mail now and a follow-up a day later, each
/// retried up to three times a minute apart. Onboarding the same user
/// again while their welcome mail is pending is refused.
fn onboard(
    pool: &Pool,
    mailer: &Arc<dyn Mailer>,
    user: &str,
) -> Result<(Handle<()>, Handle<()>), SubmitError> {
    let mail = |what: &'static str| {
        let (mailer, user) = (mailer.clone(), user.to_owned());
        Task::fallible(move || mailer.send(&user, what))
            .retry(Retry::fixed(3, MAIL_BACKOFF).jitter(Jitter::None))
    };
    let welcome = pool.submit_task(mail("welcome").key(format!("welcome:{user}")))?;
    let follow_up = pool.submit_task(mail("follow-up").delay(FOLLOW_UP_AFTER))?;
    Ok((welcome, follow_up))
}

// ---- its test -------------------------------------------------------------

#[derive(Default)]
struct FakeMailer {
    sent: Mutex<Vec<String>>,
    failures_left: Mutex<u32>,
}

impl Mailer for FakeMailer {
    fn send(&self, to: &str, what: &str) -> Result<(), String> {
        let mut failures = self.failures_left.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err("mail server down".into());
        }
        self.sent.lock().unwrap().push(format!("{what} to {to}"));
        Ok(())
    }
}

impl FakeMailer {
    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

#[test]
fn onboarding_sends_a_welcome_now_and_a_follow_up_a_day_later() -> Result<(), Box<dyn Error>> {
    let fake = Arc::new(FakeMailer::default());
    *fake.failures_left.lock().unwrap() = 1; // the first send fails
    let mailer: Arc<dyn Mailer> = fake.clone();
    let (pool, driver) = Pool::builder().build_manual()?;

    let (welcome, follow_up) = onboard(&pool, &mailer, "ada")?;
    assert!(matches!(
        onboard(&pool, &mailer, "ada"),
        Err(SubmitError::Duplicate(_))
    ));

    // The welcome mail's first attempt fails; its retry is due a minute later.
    assert_eq!(driver.run_pending(), 1);
    assert!(fake.sent().is_empty());
    driver.advance(MAIL_BACKOFF - Duration::from_secs(1));
    assert_eq!(driver.run_pending(), 0);
    driver.advance(Duration::from_secs(1));
    assert_eq!(driver.run_pending(), 1);
    welcome.wait()?;
    assert_eq!(fake.sent(), ["welcome to ada"]);

    // Nothing more until the day has passed, counted from submission.
    driver.advance(FOLLOW_UP_AFTER - MAIL_BACKOFF - Duration::from_secs(1));
    assert_eq!(driver.run_until_idle(), 0);
    driver.advance(Duration::from_secs(1));
    assert_eq!(driver.run_until_idle(), 1);
    follow_up.wait()?;
    assert_eq!(fake.sent(), ["welcome to ada", "follow-up to ada"]);
    assert_eq!(driver.elapsed(), FOLLOW_UP_AFTER);

    // Ada may be onboarded again now that her welcome mail went out.
    assert!(onboard(&pool, &mailer, "ada").is_ok());
    Ok(())
}

#[test]
fn the_same_function_runs_unchanged_on_a_pool_with_workers() -> Result<(), Box<dyn Error>> {
    let fake = Arc::new(FakeMailer::default());
    let mailer: Arc<dyn Mailer> = fake.clone();
    let pool = Pool::builder().workers(2).pin_workers(false).build()?;
    let (welcome, follow_up) = onboard(&pool, &mailer, "grace")?;
    welcome.wait()?;
    assert_eq!(fake.sent(), ["welcome to grace"]);
    // Production would wait a day; the test cancels the follow-up instead.
    assert!(follow_up.cancel());
    pool.shutdown();
    assert_eq!(fake.sent(), ["welcome to grace"]);
    Ok(())
}
