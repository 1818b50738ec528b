/*
 * A small pipeline on runq, from C.
 *
 *   1. fan out: square 1..10 on a 4-worker pool, wait for each result;
 *   2. priorities: on a 1-worker pool whose worker is held busy, queue
 *      low, normal and high tasks and log the order they run in;
 *   3. completion callbacks and retries: a flaky fallible task that
 *      succeeds on its third attempt, one that never succeeds;
 *   4. time-outs, cancellation, deadlines, delays, keys, bad arguments;
 *   5. shutdown, with the counts it reports.
 *
 * Every line it prints is deterministic; ffi/tests/c_programs.rs checks
 * them. Build (from the repository root):
 *
 *   cargo build -p runq-ffi
 *   cc -std=c11 -Wall -Wextra -I ffi/include ffi/examples/pipeline.c \
 *      target/debug/librunq_ffi.a -lpthread -ldl -lm -o pipeline
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runq.h"

/* Exit with a message when a call does not return what we expect. */
#define EXPECT(call, want)                                                   \
    do {                                                                     \
        runq_status got_ = (call);                                           \
        if (got_ != (want)) {                                                \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__, \
                    __LINE__, #call, runq_status_str(got_),                  \
                    runq_status_str(want));                                  \
            exit(1);                                                         \
        }                                                                    \
    } while (0)
#define CHECK(call) EXPECT(call, RUNQ_OK)

/* ---- a gate: a task that holds its worker until main opens it ---------- */

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
    int open;
};

static void gate_init(struct gate *g) {
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->started = 0;
    g->open = 0;
}

static void gate_destroy(struct gate *g) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* Task body: announce that the worker is held, then block until opened. */
static void gate_hold(void *arg) {
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->started = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Main thread: returns once gate_hold is running on the worker. */
static void gate_wait_started(struct gate *g) {
    pthread_mutex_lock(&g->mu);
    while (!g->started) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* A 1-worker pool whose worker is held by `g` when this returns. */
static runq_pool *held_pool(struct gate *g) {
    runq_config config;
    runq_pool *pool = NULL;
    CHECK(runq_config_default(&config));
    config.workers = 1;
    config.pin_workers = 0;
    CHECK(runq_pool_new(&config, &pool));
    gate_init(g);
    CHECK(runq_spawn(pool, gate_hold, g, RUNQ_PRIORITY_NORMAL));
    gate_wait_started(g);
    return pool;
}

/* ---- stage 1: fan out, wait for every result ---------------------------- */

/* The result is malloc'ed here and freed by whoever waits for it. */
static void *square(void *arg) {
    long n = (long)(intptr_t)arg;
    long *out = malloc(sizeof *out);
    if (out != NULL) *out = n * n;
    return out;
}

static void fan_out(void) {
    runq_config config;
    runq_pool *pool = NULL;
    runq_handle *handles[10];
    long sum = 0;

    CHECK(runq_config_default(&config));
    config.workers = 4;
    config.thread_name = "pipeline";
    CHECK(runq_pool_new(&config, &pool));
    for (long i = 0; i < 10; i++) {
        CHECK(runq_submit(pool, square, (void *)(intptr_t)(i + 1), NULL, &handles[i]));
    }
    for (int i = 0; i < 10; i++) {
        void *result = NULL;
        CHECK(runq_handle_wait(handles[i], RUNQ_WAIT_FOREVER, &result));
        sum += *(long *)result;
        free(result);
        CHECK(runq_handle_free(handles[i]));
    }
    printf("fan-out: 10 squares, sum %ld\n", sum);
    CHECK(runq_pool_free(pool));
}

/* ---- stage 2: priorities ----------------------------------------------- */

struct order_log {
    pthread_mutex_t mu;
    char text[128];
};

struct step {
    struct order_log *log;
    const char *name;
};

static void record(void *arg) {
    struct step *s = arg;
    pthread_mutex_lock(&s->log->mu);
    if (s->log->text[0] != '\0') strcat(s->log->text, " ");
    strcat(s->log->text, s->name);
    pthread_mutex_unlock(&s->log->mu);
}

static void priorities(void) {
    struct gate gate;
    runq_pool *pool = held_pool(&gate);
    struct order_log log = {PTHREAD_MUTEX_INITIALIZER, ""};
    struct step steps[] = {
        {&log, "low-1"},  {&log, "normal-1"}, {&log, "high-1"},
        {&log, "low-2"},  {&log, "normal-2"}, {&log, "high-2"},
    };
    runq_priority prio[] = {
        RUNQ_PRIORITY_LOW, RUNQ_PRIORITY_NORMAL, RUNQ_PRIORITY_HIGH,
        RUNQ_PRIORITY_LOW, RUNQ_PRIORITY_NORMAL, RUNQ_PRIORITY_HIGH,
    };

    /* The worker is busy, so all six wait in the queues. */
    for (int i = 0; i < 6; i++) CHECK(runq_spawn(pool, record, &steps[i], prio[i]));
    gate_open(&gate);
    CHECK(runq_pool_shutdown(pool, NULL)); /* runs everything queued */
    printf("priorities: %s\n", log.text);
    CHECK(runq_pool_free(pool));
    gate_destroy(&gate);
}

/* ---- stage 3: completion callbacks and retries -------------------------- */

struct flaky {
    int calls;           /* attempts so far; one attempt at a time */
    int succeed_on;      /* the attempt that succeeds; 0: never */
    const char *payload; /* the result of the attempt that succeeds */
};

static int32_t flaky_call(void *arg, void **result) {
    struct flaky *f = arg;
    f->calls++;
    if (f->calls != f->succeed_on) return 40 + f->calls; /* a failure code */
    *result = (void *)f->payload;
    return 0;
}

/* What the completion callback saw; read by main after the wait. */
struct seen {
    runq_status status;
    const char *result;
    int calls;
};

static void on_complete(runq_status status, void *result, void *user) {
    struct seen *seen = user;
    seen->status = status;
    seen->result = result;
    seen->calls++;
}

static void callbacks_and_retries(void) {
    runq_pool *pool = NULL;
    runq_config config;
    runq_task_opts opts;
    runq_handle *h = NULL;
    void *result = NULL;
    int32_t code = 0;
    uint32_t attempts = 0;

    CHECK(runq_config_default(&config));
    config.workers = 2;
    CHECK(runq_pool_new(&config, &pool));

    /* Fails twice, succeeds on the third attempt. */
    struct flaky flaky = {0, 3, "payload"};
    struct seen seen = {RUNQ_INTERNAL, NULL, 0};
    CHECK(runq_task_opts_default(&opts));
    opts.retry_attempts = 5;
    opts.retry_base_ns = 1000000; /* 1 ms, doubling */
    opts.on_complete = on_complete;
    opts.user = &seen;
    CHECK(runq_submit_fallible(pool, flaky_call, &flaky, &opts, &h));
    CHECK(runq_handle_wait(h, RUNQ_WAIT_FOREVER, &result));
    /* The callback ran before the wait returned. */
    printf("retry: %s after %d attempts, result \"%s\", callback saw %s \"%s\" (%d call)\n",
           runq_status_str(RUNQ_OK), flaky.calls, (const char *)result,
           runq_status_str(seen.status), seen.result, seen.calls);
    CHECK(runq_handle_free(h));

    /* Never succeeds: two attempts, then RUNQ_FAILED with the last code. */
    struct flaky hopeless = {0, 0, NULL};
    struct seen seen_failed = {RUNQ_INTERNAL, NULL, 0};
    opts.retry_attempts = 2;
    opts.user = &seen_failed;
    CHECK(runq_submit_fallible(pool, flaky_call, &hopeless, &opts, &h));
    EXPECT(runq_handle_wait(h, RUNQ_WAIT_FOREVER, &result), RUNQ_FAILED);
    CHECK(runq_handle_failure(h, &code, &attempts));
    printf("give up: %s after %u attempts, last code %d, result %s, callback saw %s\n",
           runq_status_str(RUNQ_FAILED), attempts, code, result == NULL ? "NULL" : "set",
           runq_status_str(seen_failed.status));
    CHECK(runq_handle_free(h));
    CHECK(runq_pool_free(pool));
}

/* ---- stage 4: time-outs, cancellation, keys, bad arguments -------------- */

static void *answer(void *arg) {
    (void)arg;
    return (void *)"forty-two";
}

static void waiting_and_cancelling(void) {
    struct gate gate;
    runq_pool *pool = held_pool(&gate);
    runq_handle *late = NULL, *doomed = NULL, *keyed = NULL, *dup = NULL;
    runq_handle *expiring = NULL, *delayed = NULL;
    runq_task_opts opts;
    void *result = NULL;
    struct seen seen_cancel = {RUNQ_INTERNAL, NULL, 0};

    /* A wait that times out keeps the handle: the result is not lost. */
    CHECK(runq_submit(pool, answer, NULL, NULL, &late));
    EXPECT(runq_handle_wait(late, 1000000, &result), RUNQ_TIMEOUT);
    printf("timeout: %s, status %s, result %s\n", runq_status_str(RUNQ_TIMEOUT),
           runq_status_str(runq_handle_status(late)), result == NULL ? "NULL" : "set");

    /* A queued task can be cancelled; its callback still runs, once. */
    CHECK(runq_task_opts_default(&opts));
    opts.on_complete = on_complete;
    opts.user = &seen_cancel;
    CHECK(runq_submit(pool, answer, NULL, &opts, &doomed));
    EXPECT(runq_handle_cancel(doomed), RUNQ_CANCELLED);
    EXPECT(runq_handle_wait(doomed, RUNQ_WAIT_FOREVER, &result), RUNQ_CANCELLED);
    printf("cancel: %s, callback saw %s (%d call)\n", runq_status_str(RUNQ_CANCELLED),
           runq_status_str(seen_cancel.status), seen_cancel.calls);

    /* A key is taken while its task waits. */
    CHECK(runq_task_opts_default(&opts));
    opts.key = "invoice-17";
    CHECK(runq_submit(pool, answer, NULL, &opts, &keyed));
    EXPECT(runq_submit(pool, answer, NULL, &opts, &dup), RUNQ_DUPLICATE);
    printf("key: second submission %s\n", runq_status_str(RUNQ_DUPLICATE));

    /* A deadline passes while the worker is held: the task never runs. */
    CHECK(runq_task_opts_default(&opts));
    opts.deadline_ns = 1000000; /* 1 ms */
    CHECK(runq_submit(pool, answer, NULL, &opts, &expiring));

    /* A delayed task waits for its time before it is even queued. */
    CHECK(runq_task_opts_default(&opts));
    opts.delay_ns = 200000000; /* 200 ms */
    CHECK(runq_submit(pool, answer, NULL, &opts, &delayed));
    printf("delay: status %s\n", runq_status_str(runq_handle_status(delayed)));

    /* Bad arguments are refused, never a crash. */
    EXPECT(runq_spawn(NULL, gate_hold, NULL, RUNQ_PRIORITY_NORMAL), RUNQ_INVALID_ARGUMENT);
    EXPECT(runq_spawn(pool, NULL, NULL, RUNQ_PRIORITY_NORMAL), RUNQ_INVALID_ARGUMENT);
    EXPECT(runq_spawn(pool, gate_hold, NULL, 7), RUNQ_INVALID_ARGUMENT);
    EXPECT(runq_submit(pool, answer, NULL, NULL, NULL), RUNQ_OK); /* detached */
    EXPECT(runq_handle_wait(NULL, 0, &result), RUNQ_INVALID_ARGUMENT);
    printf("bad arguments: %s\n", runq_status_str(RUNQ_INVALID_ARGUMENT));

    /* Release the worker (after the deadline above has surely passed); the
     * handle that timed out now yields the result. */
    struct timespec pause = {0, 5000000}; /* 5 ms */
    nanosleep(&pause, NULL);
    gate_open(&gate);
    CHECK(runq_handle_wait(late, RUNQ_WAIT_FOREVER, &result));
    printf("late result: %s\n", (const char *)result);
    CHECK(runq_handle_wait(keyed, RUNQ_WAIT_FOREVER, NULL));
    EXPECT(runq_handle_wait(expiring, RUNQ_WAIT_FOREVER, &result), RUNQ_EXPIRED);
    printf("deadline: %s\n", runq_status_str(RUNQ_EXPIRED));
    CHECK(runq_handle_wait(delayed, RUNQ_WAIT_FOREVER, &result));
    printf("delayed result: %s\n", (const char *)result);

    runq_shutdown_report report;
    CHECK(runq_pool_shutdown(pool, &report));
    EXPECT(runq_spawn(pool, gate_hold, NULL, RUNQ_PRIORITY_NORMAL), RUNQ_SHUT_DOWN);
    printf("shutdown: submitted %llu, completed %llu, cancelled %llu, failed %llu, "
           "expired %llu\n",
           (unsigned long long)report.submitted, (unsigned long long)report.completed,
           (unsigned long long)report.cancelled, (unsigned long long)report.failed,
           (unsigned long long)report.expired);

    runq_pool_metrics m;
    CHECK(runq_metrics(pool, &m));
    printf("metrics: every task ended once: %s\n",
           m.submitted == m.completed + m.failed + m.cancelled + m.expired ? "yes" : "no");

    CHECK(runq_handle_free(late));
    CHECK(runq_handle_free(doomed));
    CHECK(runq_handle_free(keyed));
    CHECK(runq_handle_free(expiring));
    CHECK(runq_handle_free(delayed));
    CHECK(runq_pool_free(pool));
    gate_destroy(&gate);
}

/* ---- stage 5: names, dead letters, Prometheus text ---------------------- */

/* The dead letters a pool reported: copied, since the strings are borrowed. */
struct dead_log {
    pthread_mutex_t mu;
    int count;
    char text[256];
};

static void on_dead_letter(const runq_dead_letter *d, void *user) {
    struct dead_log *log = user;
    pthread_mutex_lock(&log->mu);
    log->count++;
    snprintf(log->text, sizeof log->text, "%s (key %s) after %u attempts: %s",
             d->name != NULL ? d->name : "(unnamed)", d->key != NULL ? d->key : "(none)",
             d->attempts, d->error);
    pthread_mutex_unlock(&log->mu);
}

static void observing(void) {
    runq_config config;
    runq_pool *pool = NULL;
    runq_task_opts opts;
    runq_handle *h = NULL;
    struct dead_log dead = {PTHREAD_MUTEX_INITIALIZER, 0, ""};

    CHECK(runq_config_default(&config));
    config.workers = 2;
    config.thread_name = "observed";
    config.dead_letter = on_dead_letter;
    config.dead_letter_user = &dead;
    CHECK(runq_pool_new(&config, &pool));

    struct flaky hopeless = {0, 0, NULL};
    CHECK(runq_task_opts_default(&opts));
    opts.retry_attempts = 2;
    opts.name = "charge-card";
    opts.key = "order-17";
    CHECK(runq_submit_fallible(pool, flaky_call, &hopeless, &opts, &h));
    EXPECT(runq_handle_wait(h, RUNQ_WAIT_FOREVER, NULL), RUNQ_FAILED);
    CHECK(runq_handle_free(h));
    CHECK(runq_pool_shutdown(pool, NULL)); /* the hook has run by now */
    printf("dead letters: %d, %s\n", dead.count, dead.text);

    char *text = NULL;
    CHECK(runq_metrics_prometheus(pool, &text));
    printf("prometheus: %s\n",
           strstr(text, "runq_tasks_dead_lettered_total{pool=\"observed\"} 1\n") != NULL &&
                   strstr(text, "runq_task_run_seconds_count{pool=\"observed\"} 2\n") != NULL
               ? "dead letter and both attempts counted"
               : text);
    CHECK(runq_string_free(text));
    EXPECT(runq_string_free(NULL), RUNQ_INVALID_ARGUMENT);
    EXPECT(runq_metrics_prometheus(NULL, &text), RUNQ_INVALID_ARGUMENT);
    EXPECT(runq_metrics_prometheus(pool, NULL), RUNQ_INVALID_ARGUMENT);

    runq_pool_metrics m;
    CHECK(runq_metrics(pool, &m));
    printf("metrics: dead_lettered %llu\n", (unsigned long long)m.dead_lettered);
    CHECK(runq_pool_free(pool));
}

int main(void) {
    fan_out();
    priorities();
    callbacks_and_retries();
    waiting_and_cancelling();
    observing();
    printf("done\n");
    return 0;
}
