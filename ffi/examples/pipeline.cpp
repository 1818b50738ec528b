// A small pipeline on runq, from C++: count the words of a short text.
//
//   1. stage one: one task per line counts its words, at a priority taken
//      from the line (headlines first), on a 1-worker pool so the order is
//      visible;
//   2. stage two: the counts flow into a completion callback that keeps a
//      running total, while the main thread waits on every handle;
//   3. the pool shuts down and reports what ran.
//
// Pools and handles are held by std::unique_ptr with runq's free functions
// as deleters, so nothing leaks on any path. Every line it prints is
// deterministic; ffi/tests/c_programs.rs checks them. Build (from the
// repository root):
//
//   cargo build -p runq-ffi
//   c++ -std=c++17 -Wall -Wextra -I ffi/include ffi/examples/pipeline.cpp
//       target/debug/librunq_ffi.a -lpthread -ldl -lm -o pipeline_cpp
//   (one command line)
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "runq.h"

namespace {

// Exits with a message when a call does not return what we expect.
void expect(runq_status got, runq_status want, const char* what) {
    if (got != want) {
        std::fprintf(stderr, "%s returned %s, expected %s\n", what, runq_status_str(got),
                     runq_status_str(want));
        std::exit(1);
    }
}

struct PoolFree {
    void operator()(runq_pool* p) const noexcept { runq_pool_free(p); }
};
struct HandleFree {
    void operator()(runq_handle* h) const noexcept { runq_handle_free(h); }
};
using Pool = std::unique_ptr<runq_pool, PoolFree>;
using Handle = std::unique_ptr<runq_handle, HandleFree>;

Pool make_pool(uint32_t workers) {
    runq_config config;
    expect(runq_config_default(&config), RUNQ_OK, "runq_config_default");
    config.workers = workers;
    config.pin_workers = 0;
    runq_pool* raw = nullptr;
    expect(runq_pool_new(&config, &raw), RUNQ_OK, "runq_pool_new");
    return Pool(raw);
}

// Holds a pool's only worker until opened, so queued tasks line up.
struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool started = false;
    bool open = false;

    static void hold(void* arg) noexcept {
        auto* g = static_cast<Gate*>(arg);
        std::unique_lock<std::mutex> lock(g->mu);
        g->started = true;
        g->cv.notify_all();
        g->cv.wait(lock, [g] { return g->open; });
    }
    void wait_started() {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [this] { return started; });
    }
    void release() {
        std::lock_guard<std::mutex> lock(mu);
        open = true;
        cv.notify_all();
    }
};

// One line of input on its way through the pipeline.
struct Line {
    std::string text;
    runq_priority priority;
    std::vector<std::string>* order;  // where stage one logs its progress
    std::mutex* order_mu;
};

// The result of stage one, owned by the main thread once waited for.
struct Count {
    std::string first_word;
    long words;
};

// Stage one, on a worker: count the words. The result is new'd here and
// deleted by the thread that waits for it.
void* count_words(void* arg) noexcept {
    auto* line = static_cast<Line*>(arg);
    std::istringstream in(line->text);
    std::string word;
    auto* count = new Count{"", 0};
    while (in >> word) {
        if (count->words++ == 0) count->first_word = word;
    }
    std::lock_guard<std::mutex> lock(*line->order_mu);
    line->order->push_back(count->first_word);
    return count;
}

// Stage two, called by runq when a count is ready: keep a running total.
void add_to_total(runq_status status, void* result, void* user) noexcept {
    auto* total = static_cast<std::atomic<long>*>(user);
    if (status == RUNQ_OK) total->fetch_add(static_cast<Count*>(result)->words);
}

}  // namespace

int main() {
    std::vector<std::string> order;
    std::mutex order_mu;
    std::vector<Line> lines = {
        {"the quiet body of the report", RUNQ_PRIORITY_NORMAL, &order, &order_mu},
        {"HEADLINE runq reaches C", RUNQ_PRIORITY_HIGH, &order, &order_mu},
        {"appendix with footnotes and more footnotes", RUNQ_PRIORITY_LOW, &order, &order_mu},
        {"second paragraph of the body", RUNQ_PRIORITY_NORMAL, &order, &order_mu},
        {"BREAKING two headlines today", RUNQ_PRIORITY_HIGH, &order, &order_mu},
    };

    Pool pool = make_pool(1);
    Gate gate;
    expect(runq_spawn(pool.get(), &Gate::hold, &gate, RUNQ_PRIORITY_NORMAL), RUNQ_OK,
           "runq_spawn");
    gate.wait_started();

    std::atomic<long> total{0};
    std::vector<Handle> handles;
    for (Line& line : lines) {
        runq_task_opts opts;
        expect(runq_task_opts_default(&opts), RUNQ_OK, "runq_task_opts_default");
        opts.priority = line.priority;
        opts.on_complete = &add_to_total;
        opts.user = &total;
        runq_handle* raw = nullptr;
        expect(runq_submit(pool.get(), &count_words, &line, &opts, &raw), RUNQ_OK,
               "runq_submit");
        handles.emplace_back(raw);
    }
    std::printf("queued %zu lines behind a busy worker\n", handles.size());
    gate.release();

    long words = 0;
    for (std::size_t i = 0; i < handles.size(); i++) {
        void* result = nullptr;
        expect(runq_handle_wait(handles[i].get(), RUNQ_WAIT_FOREVER, &result), RUNQ_OK,
               "runq_handle_wait");
        std::unique_ptr<Count> count(static_cast<Count*>(result));
        std::printf("line %zu: %ld words, first \"%s\"\n", i + 1, count->words,
                    count->first_word.c_str());
        words += count->words;
    }
    // Every callback ran before its wait returned, so the total is complete.
    std::printf("total: %ld words, callbacks agree: %s\n", words,
                total.load() == words ? "yes" : "no");

    std::string joined;
    for (const std::string& w : order) joined += (joined.empty() ? "" : " ") + w;
    std::printf("run order: %s\n", joined.c_str());

    runq_shutdown_report report;
    expect(runq_pool_shutdown(pool.get(), &report), RUNQ_OK, "runq_pool_shutdown");
    std::printf("shutdown: submitted %llu, completed %llu\n",
                static_cast<unsigned long long>(report.submitted),
                static_cast<unsigned long long>(report.completed));
    expect(runq_spawn(pool.get(), &Gate::hold, &gate, RUNQ_PRIORITY_NORMAL), RUNQ_SHUT_DOWN,
           "runq_spawn after shutdown");
    std::printf("after shutdown: %s\n", runq_status_str(RUNQ_SHUT_DOWN));
    return 0;
}
