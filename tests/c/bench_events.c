/* How fast events reach a C callback: messages pushed through an `upsert` rule (SPEC §2) and
 * delivered as patch events, counted in the callback. Prints a table; checks no numbers.
 *
 * usage: bench_events [MESSAGES] */
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long callbacks;
    long version;
    size_t bytes;
} counter;

static void count_cb(void *user_data, const char *json, size_t len) {
    counter *c = user_data;
    /* Events are {"type":…,"key":…,"from":…,"version":N,…}: read N without a JSON parser. */
    const char *v = strstr(json, "\"version\":");
    long version = v ? strtol(v + 10, NULL, 10) : 0;
    pthread_mutex_lock(&c->lock);
    c->callbacks++;
    c->bytes += len;
    if (version > c->version) c->version = version;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

static void query_const(void *user_data, const char *arg_json, livecache_request *request) {
    (void)arg_json;
    livecache_request_fulfill(request, (const char *)user_data);
}

static void wait_version(counter *c, long version) {
    pthread_mutex_lock(&c->lock);
    while (c->version < version) pthread_cond_wait(&c->cond, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

int main(int argc, char **argv) {
    long messages = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    livecache_hooks *hooks = NULL;
    livecache_hooks_new(&hooks);
    livecache_hooks_set_query_fn(hooks, "getItems", query_const, (void *)"{\"ids\":[],\"entities\":{}}");
    livecache_client *client = NULL;
    livecache_result rc = livecache_client_new_with_options(
        "{\"endpoints\": {\"getItems\": {\"stream\": {\"apply\": {\"upsert\": {\"selectId\": \"id\"}}}}}}", NULL, hooks, &client);
    livecache_hooks_free(hooks);
    if (rc != LIVECACHE_RESULT_OK) {
        fprintf(stderr, "client: %s\n", livecache_last_error());
        return 1;
    }
    counter c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    livecache_subscription *sub = NULL;
    livecache_subscribe(client, "getItems", "\"bench\"", count_cb, &c, &sub);
    wait_version(&c, 1);

    /* Throughput: a stream of upserts over 1,000 ids; bursts coalesce into fewer events (E2). */
    long base_callbacks = c.callbacks;
    char msg[128];
    double t0 = now_seconds();
    for (long i = 0; i < messages; i++) {
        snprintf(msg, sizeof msg, "{\"id\":%ld,\"v\":%ld,\"text\":\"message %ld\"}", i % 1000, i, i);
        livecache_push_message(client, "getItems", "\"bench\"", msg);
    }
    double pushed = now_seconds() - t0;
    wait_version(&c, 1 + messages);
    double total = now_seconds() - t0;
    long burst_callbacks = c.callbacks - base_callbacks;

    /* Latency: one message at a time, waiting for its event each time. */
    long rounds = messages / 50 > 2000 ? 2000 : (messages / 50 > 10 ? messages / 50 : 10);
    long v = c.version;
    double t1 = now_seconds();
    for (long i = 0; i < rounds; i++) {
        snprintf(msg, sizeof msg, "{\"id\":%ld,\"v\":%ld}", i % 1000, -1 - i);
        livecache_push_message(client, "getItems", "\"bench\"", msg);
        wait_version(&c, ++v);
    }
    double pingpong = now_seconds() - t1;

    printf("bench_events: upsert rule, events to a C callback (thread delivery)\n");
    printf("  %-34s %12ld\n", "messages pushed", messages);
    printf("  %-34s %12.3f\n", "push calls, s", pushed);
    printf("  %-34s %12.3f\n", "until the last event, s", total);
    printf("  %-34s %12.0f\n", "messages applied and delivered/s", (double)messages / total);
    printf("  %-34s %12ld\n", "callbacks (bursts coalesce, E2)", burst_callbacks);
    printf("  %-34s %12.0f\n", "callbacks/s", (double)burst_callbacks / total);
    printf("  %-34s %12.1f\n", "event bytes/callback", (double)c.bytes / (double)c.callbacks);
    printf("  %-34s %12ld\n", "one-at-a-time round trips", rounds);
    printf("  %-34s %12.0f\n", "round trips/s (push -> callback)", (double)rounds / pingpong);
    printf("  %-34s %12.1f\n", "round trip, us", pingpong / (double)rounds * 1e6);
    fflush(stdout);

    livecache_unsubscribe(sub);
    livecache_client_free(client);
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.cond);
    return 0;
}
