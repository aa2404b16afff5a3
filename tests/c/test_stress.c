/* Memory and lifetime stress, meant to run under valgrind memcheck: 10,000 subscribe /
 * unsubscribe cycles on one client (entries kept and entries removed at once, L7), then 100
 * clients created and freed with subscriptions still live, in both delivery modes. */
#include <stdlib.h>

#include "support.h"

#define CYCLES 10000
#define CLIENTS 100

static int events;

static void count_cb(void *user_data, const char *json, size_t len) {
    (void)user_data;
    (void)json;
    (void)len;
    __atomic_add_fetch(&events, 1, __ATOMIC_RELAXED);
}

static void query_const(void *user_data, const char *arg_json, livecache_request *request) {
    (void)arg_json;
    livecache_request_fulfill(request, (const char *)user_data);
}

static const char *CONFIG =
    "{\"keepUnusedDataFor\": 60, \"endpoints\": {"
    "\"getKept\": {\"stream\": {\"apply\": \"append\"}},"
    "\"getChurn\": {\"keepUnusedDataFor\": 0}"
    "}}";

static livecache_client *new_client(const char *options) {
    livecache_hooks *hooks = NULL;
    livecache_client *client = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getKept", query_const, (void *)"[]"));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getChurn", query_const, (void *)"{\"n\":1}"));
    CHECK_OK(livecache_client_new_with_options(CONFIG, options, hooks, &client));
    livecache_hooks_free(hooks);
    return client;
}

static jvalue *stats_of(livecache_client *client) {
    char *s = NULL;
    CHECK_OK(livecache_stats(client, &s));
    return take_json(s);
}

static void subscribe_unsubscribe_10000_cycles(void) {
    livecache_client *client = new_client(NULL);
    char arg[32];
    for (int i = 0; i < CYCLES; i++) {
        livecache_subscription *sub = NULL;
        const char *endpoint = i % 10 == 9 ? "getChurn" : "getKept";
        snprintf(arg, sizeof arg, "%d", i % 16);
        livecache_result rc = livecache_subscribe(client, endpoint, arg, count_cb, NULL, &sub);
        if (rc != LIVECACHE_RESULT_OK) {
            CHECK(0, "cycle %d: %s", i, livecache_last_error());
            break;
        }
        if (i % 100 == 0) livecache_push_message(client, endpoint, arg, "{\"id\":1}");
        livecache_unsubscribe(sub);
    }
    jvalue *st = stats_of(client);
    CHECK(json_get(st, "subscriptions")->num == 0, "subscriptions left: %g", json_get(st, "subscriptions")->num);
    CHECK(json_get(st, "entriesCreated")->num >= 17, "entries created: %g", json_get(st, "entriesCreated")->num);
    json_free(st);
    livecache_client_free(client);
    printf("# %d cycles, %d events delivered\n", CYCLES, events);
}

static void clients_created_and_freed_with_live_subscriptions(void) {
    for (int i = 0; i < CLIENTS; i++) {
        livecache_client *client = new_client(i % 2 ? "{\"delivery\": \"poll\", \"workerThreads\": 1}" : NULL);
        if (!client) break;
        livecache_subscription *subs[3] = {NULL, NULL, NULL};
        CHECK_OK(livecache_subscribe(client, "getKept", "\"a\"", count_cb, NULL, &subs[0]));
        CHECK_OK(livecache_subscribe(client, "getKept", "\"a\"", count_cb, NULL, &subs[1]));
        CHECK_OK(livecache_subscribe(client, "getChurn", NULL, count_cb, NULL, &subs[2]));
        CHECK_OK(livecache_push_message(client, "getKept", "\"a\"", "{\"id\":1}"));
        if (i % 2) CHECK_OK(livecache_client_poll(client, 0, NULL));
        livecache_unsubscribe(subs[1]);
        livecache_client_free(client);
        livecache_unsubscribe(subs[0]);
        livecache_unsubscribe(subs[2]);
    }
}

int main(void) {
    run_case("subscribe_unsubscribe_10000_cycles", subscribe_unsubscribe_10000_cycles);
    run_case("clients_created_and_freed_with_live_subscriptions", clients_created_and_freed_with_live_subscriptions);
    return finish();
}
