/* A slow consumer keeps memory bounded (E4, E5): a subscriber callback that sleeps while a flood
 * of 20,000 messages of 4 KB (80 MB of events) is pushed leaves the process within a few
 * megabytes of where it started, because the subscription's queue (queueLimit, 1,024 by default)
 * collapses into one snapshot instead of holding the flood. Measured as the process's resident
 * memory (/proc/self/statm). Run natively only: under memcheck the figure would be valgrind's. */
#include <stdlib.h>
#include <unistd.h>

#include "support.h"

#define MESSAGES 20000
#define BLOB 4000
/* The callback's queue holds at most queueLimit events of ~4 KB (4 MB) and the flood is 80 MB. */
#define BOUND_BYTES (24L * 1024 * 1024)
#define WAIT 60.0

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static void query_start(void *user_data, const char *arg_json, livecache_request *request) {
    (void)user_data;
    (void)arg_json;
    livecache_request_fulfill(request, "{\"i\":-1}");
}

/* The subscriber: the first event after the snapshot blocks it until released. */
typedef struct {
    recorder rec;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int released;
    int blocked; /* the callback is waiting */
} slow;

static void slow_cb(void *user_data, const char *event_json, size_t len) {
    slow *s = user_data;
    if (s->rec.version >= 1) {
        pthread_mutex_lock(&s->lock);
        s->blocked = 1;
        pthread_cond_broadcast(&s->cond);
        while (!s->released) pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
    }
    recorder_cb(&s->rec, event_json, len);
}

static long applied(livecache_client *client) {
    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    jvalue *s = take_json(stats);
    long n = s ? (long)json_get(s, "messagesApplied")->num : -1;
    json_free(s);
    return n;
}

static void a_sleeping_callback_holds_a_bounded_queue_during_a_flood(void) {
    livecache_hooks *hooks = NULL;
    livecache_client *client = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "doc", query_start, NULL));
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"doc\": {\"stream\": {\"apply\": \"replace\"}}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    slow s = {.released = 0, .blocked = 0};
    recorder_init(&s.rec);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "doc", NULL, slow_cb, &s, &sub));
    CHECK(recorder_wait_version(&s.rec, 1, WAIT), "no snapshot");

    char *message = malloc(BLOB + 64);
    char *blob = malloc(BLOB + 1);
    memset(blob, 'x', BLOB);
    blob[BLOB] = '\0';
    long before = rss_bytes();
    for (int i = 0; i < MESSAGES; i++) {
        snprintf(message, BLOB + 64, "{\"i\":%d,\"blob\":\"%s\"}", i, blob);
        CHECK_OK(livecache_push_message(client, "doc", NULL, message));
    }
    double deadline = now_seconds() + WAIT;
    while (applied(client) < MESSAGES && now_seconds() < deadline) sleep_ms(5);
    CHECK(applied(client) == MESSAGES, "the flood applied: %ld", applied(client));
    pthread_mutex_lock(&s.lock);
    int blocked = s.blocked;
    pthread_mutex_unlock(&s.lock);
    CHECK(blocked, "the callback was blocked during the flood");
    long grown = rss_bytes() - before;
    printf("sleeping callback: grew %.1f MiB over a %.0f MiB flood\n", grown / 1048576.0, MESSAGES * (double)BLOB / 1048576.0);
    CHECK(grown < BOUND_BYTES, "grew %.1f MiB while the callback slept", grown / 1048576.0);

    pthread_mutex_lock(&s.lock);
    s.released = 1;
    pthread_cond_broadcast(&s.cond);
    pthread_mutex_unlock(&s.lock);
    CHECK(recorder_wait_version(&s.rec, MESSAGES + 1, WAIT), "the callback caught up: at %ld", s.rec.version);
    int events = recorder_count(&s.rec, NULL);
    CHECK(events <= 1027, "the queue collapsed instead of holding the flood: %d events", events);
    CHECK(recorder_count(&s.rec, "snapshot") >= 2, "the overflow was one snapshot (E5)");
    char *snap = NULL, why[300];
    CHECK_OK(livecache_subscription_snapshot(sub, &snap));
    if (snap) {
        CHECK(recorder_matches(&s.rec, snap, why, sizeof why), "replica: %s", why);
        livecache_string_free(snap);
    }
    free(message);
    free(blob);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&s.rec);
}

int main(void) {
    run_case("a_sleeping_callback_holds_a_bounded_queue_during_a_flood", a_sleeping_callback_holds_a_bounded_queue_during_a_flood);
    return finish();
}
