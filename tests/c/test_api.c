/* The C API of livecache: subscriptions, host updates, error codes and messages, callbacks that
 * re-enter the API, pull mode, host hooks and shutdown (SPEC §5, §6, §7 C, §8). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

#define WAIT 10.0

/* ---- shared fixtures ---- */

/* A query function answering at once with the JSON text in user_data. */
static void query_const(void *user_data, const char *arg_json, livecache_request *request) {
    (void)arg_json;
    livecache_request_fulfill(request, (const char *)user_data);
}

static const char *DOC_CONFIG =
    "{\"keepUnusedDataFor\": 60, \"endpoints\": {"
    "\"getDoc\": {},"
    "\"getMessages\": {\"stream\": {\"apply\": {\"append\": {\"dedupeBy\": \"id\"}}}},"
    "\"getPending\": {}"
    "}}";

/* A client whose getDoc answers {"title":"t","n":1}, getMessages [] and getPending never. */
static livecache_request *pending_request;
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;

static void query_hold(void *user_data, const char *arg_json, livecache_request *request) {
    (void)user_data;
    (void)arg_json;
    pthread_mutex_lock(&pending_lock);
    if (pending_request) livecache_request_reject(pending_request, NULL);
    pending_request = request;
    pthread_mutex_unlock(&pending_lock);
}

static void release_pending(void) {
    pthread_mutex_lock(&pending_lock);
    if (pending_request) livecache_request_reject(pending_request, NULL);
    pending_request = NULL;
    pthread_mutex_unlock(&pending_lock);
}

static livecache_client *doc_client(const char *options) {
    livecache_hooks *hooks = NULL;
    livecache_client *client = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getDoc", query_const, (void *)"{\"title\":\"t\",\"n\":1}"));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getMessages", query_const, (void *)"[]"));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getPending", query_hold, NULL));
    CHECK_OK(livecache_client_new_with_options(DOC_CONFIG, options, hooks, &client));
    livecache_hooks_free(hooks);
    return client;
}

static jvalue *snapshot_of(livecache_client *client, const char *endpoint, const char *arg) {
    char *snap = NULL;
    CHECK_OK(livecache_snapshot(client, endpoint, arg, &snap));
    return take_json(snap);
}

static void check_replica(recorder *rec, livecache_subscription *sub) {
    char *snap = NULL, why[300];
    CHECK_OK(livecache_subscription_snapshot(sub, &snap));
    if (!snap) return;
    CHECK(recorder_matches(rec, snap, why, sizeof why), "replica: %s", why);
    livecache_string_free(snap);
}

static long version_of(livecache_client *client, const char *endpoint, const char *arg) {
    jvalue *s = snapshot_of(client, endpoint, arg);
    long v = s ? (long)json_get(s, "version")->num : -1;
    json_free(s);
    return v;
}

/* Waits until the entry has data: its snapshot event is queued by then. */
static int wait_data(livecache_client *client, const char *endpoint, const char *arg) {
    double deadline = now_seconds() + WAIT;
    while (version_of(client, endpoint, arg) < 1) {
        if (now_seconds() > deadline) return 0;
        sleep_ms(5);
    }
    return 1;
}

/* "Nothing more is coming" without a timed wait: delivery is first in, first out, so once a
 * subscription made now has its first event, every event queued before it was delivered (or
 * dropped). For a subscription with fewer events queued than the dispatcher's fairness budget. */
static void wait_delivered_so_far(livecache_client *client) {
    recorder marker;
    recorder_init(&marker);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getDoc", "\"marker\"", recorder_cb, &marker, &sub));
    CHECK(recorder_wait_count(&marker, NULL, 1, WAIT), "the marker subscription got no event");
    livecache_unsubscribe(sub);
    recorder_destroy(&marker);
}

/* ---- subscriptions and host updates ---- */

static void subscribe_snapshot_patch_unsubscribe(void) {
    livecache_client *client = doc_client(NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getDoc", "1", recorder_cb, &rec, &sub));
    CHECK(sub != NULL, "no subscription");
    CHECK(strcmp(livecache_subscription_key(sub), "getDoc(1)") == 0, "key %s", livecache_subscription_key(sub));
    CHECK(recorder_wait_version(&rec, 1, WAIT), "no snapshot");

    jvalue *snap = snapshot_of(client, "getDoc", "1");
    CHECK(strcmp(json_string(json_get(snap, "key")), "getDoc(1)") == 0, "snapshot key");
    CHECK(strcmp(json_string(json_get(snap, "status")), "fulfilled") == 0, "status");
    CHECK(strcmp(json_string(json_get(json_get(snap, "stream"), "state")), "closed") == 0, "stream state");
    json_free(snap);

    char *result = NULL;
    CHECK_OK(livecache_patch_query_data(client, "getDoc", "1",
                                        "[{\"op\":\"replace\",\"path\":\"/n\",\"value\":2},"
                                        "{\"op\":\"add\",\"path\":\"/tags\",\"value\":[\"a\"]}]",
                                        &result));
    jvalue *r = take_json(result);
    CHECK(json_get(r, "patches") && json_get(r, "patches")->n == 2, "patches of the result");
    CHECK(json_get(r, "inversePatches") && json_get(r, "inversePatches")->n == 2, "inverse patches");
    /* L9: synchronous for snapshot. */
    CHECK(version_of(client, "getDoc", "1") == 2, "version after patch");
    CHECK(recorder_wait_version(&rec, 2, WAIT), "no patch event");
    check_replica(&rec, sub);

    /* Undo through the inverse patches. */
    char *inverse = json_dump(json_get(r, "inversePatches"));
    CHECK_OK(livecache_patch_query_data(client, "getDoc", "1", inverse, NULL));
    free(inverse);
    json_free(r);
    CHECK(recorder_wait_version(&rec, 3, WAIT), "no undo event");
    check_replica(&rec, sub);
    char *text = recorder_replica_text(&rec);
    jvalue *replica = json_parse_or_die(text);
    jvalue *want = json_parse_or_die("{\"title\":\"t\",\"n\":1}");
    CHECK(json_equal(replica, want), "after undo: %s", text);
    json_free(replica);
    json_free(want);
    free(text);
    CHECK(recorder_count(&rec, "patch") >= 1, "patch events");

    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    jvalue *st = take_json(stats);
    CHECK(json_get(st, "subscriptions")->num == 1, "subscriptions counter");
    CHECK(json_get(st, "hostUpdates")->num == 2, "hostUpdates counter");
    json_free(st);

    livecache_unsubscribe(sub);
    CHECK_OK(livecache_stats(client, &stats));
    st = take_json(stats);
    CHECK(json_get(st, "subscriptions")->num == 0, "subscriptions after unsubscribe");
    CHECK(json_get(st, "entries")->num == 1, "the entry stays for keepUnusedDataFor (L7)");
    json_free(st);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

static void push_messages_through_the_pipeline(void) {
    livecache_client *client = doc_client(NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(recorder_wait_version(&rec, 1, WAIT), "no snapshot");
    CHECK_OK(livecache_push_message(client, "getMessages", "\"redux\"", "{\"id\":1,\"text\":\"a\"}"));
    CHECK_OK(livecache_push_message(client, "getMessages", "\"redux\"", "{\"id\":2,\"text\":\"b\\u00e9\\ud83d\\ude00\"}"));
    CHECK_OK(livecache_push_message(client, "getMessages", "\"redux\"", "{\"id\":1,\"text\":\"dup\"}"));
    /* Bad stream input is an error event, not an error code (E3, L10). */
    CHECK_OK(livecache_push_message(client, "getMessages", "\"redux\"", "{not json"));
    CHECK_OK(livecache_push_message(client, "getMessages", "\"redux\"", "{\"id\":3,\"text\":\"c\"}"));
    CHECK(recorder_wait_count(&rec, "error", 1, WAIT), "no error event");
    CHECK(recorder_wait_version(&rec, 4, WAIT), "replica at %ld", rec.version);
    check_replica(&rec, sub);
    jvalue *snap = snapshot_of(client, "getMessages", "\"redux\"");
    jvalue *data = json_get(snap, "data");
    CHECK(data && data->n == 3, "three messages (dedupeBy id)");
    CHECK(data && strcmp(json_string(json_get(data->items[1], "text")), "b\xc3\xa9\xf0\x9f\x98\x80") == 0, "UTF-8 text");
    json_free(snap);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

static double received_count(livecache_client *client) {
    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    jvalue *st = take_json(stats);
    double n = json_get(st, "messagesReceived")->num;
    json_free(st);
    return n;
}

/* L10 for a burst: each element through the pipeline on its own; a refused call queues nothing. */
static void push_messages_is_a_burst(void) {
    livecache_client *client = doc_client(NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"burst\"", recorder_cb, &rec, &sub));
    CHECK(recorder_wait_version(&rec, 1, WAIT), "no snapshot");
    /* {"text"} has no id (an apply error under dedupeBy), the second id 1 a duplicate. */
    CHECK_OK(livecache_push_messages(client, "getMessages", "\"burst\"",
                                     "[{\"id\":1,\"text\":\"a\"},{\"text\":\"no id\"},{\"id\":1,\"text\":\"dup\"},{\"id\":2,\"text\":\"b\"}]"));
    CHECK(recorder_wait_count(&rec, "error", 1, WAIT), "no error event");
    CHECK(recorder_wait_version(&rec, 3, WAIT), "replica at %ld", rec.version);
    check_replica(&rec, sub);
    jvalue *snap = snapshot_of(client, "getMessages", "\"burst\"");
    jvalue *data = json_get(snap, "data");
    CHECK(data && data->n == 2, "two messages");
    CHECK(data && strcmp(json_string(json_get(data->items[1], "text")), "b") == 0, "in order");
    json_free(snap);
    CHECK(received_count(client) == 4, "four messages received");

    /* 129 levels inside the array: too deep for a message, refused as a whole. */
    char deep[2 + 2 * 129 + 1];
    size_t k = 0;
    deep[k++] = '[';
    for (int i = 0; i < 129; i++) deep[k++] = '[';
    for (int i = 0; i < 129; i++) deep[k++] = ']';
    deep[k++] = ']';
    deep[k] = '\0';
    CHECK_RC(livecache_push_messages(client, "getMessages", "\"burst\"", deep), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_push_messages(client, "getMessages", "\"burst\"", "[{\"id\":5}, {not json"), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_push_messages(client, "getMessages", "\"burst\"", "{\"id\":5}"), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(livecache_push_messages(client, "getMessages", "\"burst\"", NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_RC(livecache_push_messages(client, "getMessages", "\"burst\"", "[\"\xff\"]"), LIVECACHE_RESULT_INVALID_UTF8);
    CHECK_RC(livecache_push_messages(client, "getMessages", "\"other\"", "[{\"id\":5}]"), LIVECACHE_RESULT_NOT_FOUND);
    CHECK_RC(livecache_push_messages(client, "getNothing", NULL, "[{\"id\":5}]"), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK_RC(livecache_push_messages(NULL, "getMessages", "\"burst\"", "[]"), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_OK(livecache_push_messages(client, "getMessages", "\"burst\"", "[]"));
    CHECK(received_count(client) == 4, "a refused call queues none of its messages");
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

static void upsert_refetch_and_update_recipe_set_data(void *user_data, const char *data_json, livecache_update *update) {
    (void)user_data;
    jvalue *d = json_parse_or_die(data_json);
    json_set(d, "title", json_new_string("from recipe"));
    char *text = json_dump(d);
    CHECK_OK(livecache_update_set_data(update, text));
    free(text);
    json_free(d);
}

static void recipe_patches(void *user_data, const char *data_json, livecache_update *update) {
    (void)data_json;
    CHECK_OK(livecache_update_set_patches(update, (const char *)user_data));
}

static void recipe_fail(void *user_data, const char *data_json, livecache_update *update) {
    (void)user_data;
    (void)data_json;
    CHECK_OK(livecache_update_fail(update, "no thanks"));
}

static void recipe_bad_calls(void *user_data, const char *data_json, livecache_update *update) {
    (void)user_data;
    (void)data_json;
    CHECK_RC(livecache_update_set_data(update, "{bad"), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_update_set_patches(update, "{\"op\":\"add\"}"), LIVECACHE_RESULT_PATCH);
    CHECK_RC(livecache_update_set_patches(update, NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_RC(livecache_update_set_data(NULL, "1"), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_RC(livecache_update_fail(update, "\xff"), LIVECACHE_RESULT_INVALID_UTF8);
    /* Nothing valid was set: no change. */
}

static void upsert_refetch_and_update_query_data(void) {
    livecache_client *client = doc_client(NULL);
    /* L9: upsert creates a fulfilled entry with no subscriber. */
    CHECK_OK(livecache_upsert_query_data(client, "getDoc", "7", "{\"title\":\"up\",\"n\":5}"));
    jvalue *snap = snapshot_of(client, "getDoc", "7");
    CHECK(strcmp(json_string(json_get(snap, "status")), "fulfilled") == 0, "upserted status");
    CHECK(json_get(json_get(snap, "data"), "n")->num == 5, "upserted data");
    json_free(snap);

    char *result = NULL;
    CHECK_OK(livecache_update_query_data(client, "getDoc", "7", upsert_refetch_and_update_recipe_set_data, NULL, &result));
    jvalue *r = take_json(result);
    CHECK(json_get(r, "patches")->n == 1, "one patch from the recipe's new data");
    json_free(r);
    snap = snapshot_of(client, "getDoc", "7");
    CHECK(strcmp(json_string(json_get(json_get(snap, "data"), "title")), "from recipe") == 0, "recipe data");
    json_free(snap);

    CHECK_OK(livecache_update_query_data(client, "getDoc", "7", recipe_patches,
                                         (void *)"[{\"op\":\"replace\",\"path\":\"/n\",\"value\":6}]", NULL));
    CHECK(version_of(client, "getDoc", "7") == 3, "version after recipe patches");
    long before = version_of(client, "getDoc", "7");
    CHECK_RC(livecache_update_query_data(client, "getDoc", "7", recipe_patches,
                                         (void *)"[{\"op\":\"replace\",\"path\":\"/n\",\"value\":7},{\"op\":\"remove\",\"path\":\"/zz\"}]",
                                         NULL),
             LIVECACHE_RESULT_PATCH);
    CHECK_RC(livecache_update_query_data(client, "getDoc", "7", recipe_fail, NULL, NULL), LIVECACHE_RESULT_PATCH);
    CHECK(strstr(livecache_last_error(), "no thanks") != NULL, "message: %s", livecache_last_error());
    CHECK_OK(livecache_update_query_data(client, "getDoc", "7", recipe_bad_calls, NULL, NULL));
    CHECK(version_of(client, "getDoc", "7") == before, "failed recipes change nothing");
    snap = snapshot_of(client, "getDoc", "7");
    CHECK(json_get(json_get(snap, "data"), "n")->num == 6, "data unchanged");
    json_free(snap);

    /* L5: refetch replaces the data with the query's answer. */
    CHECK_OK(livecache_refetch(client, "getDoc", "7"));
    double deadline = now_seconds() + WAIT;
    for (;;) {
        snap = snapshot_of(client, "getDoc", "7");
        int done = json_get(json_get(snap, "data"), "n")->num == 1;
        json_free(snap);
        if (done || now_seconds() > deadline) {
            CHECK(done, "refetch did not replace the data");
            break;
        }
        sleep_ms(5);
    }
    livecache_client_free(client);
}

static void cache_keys_follow_k1(void) {
    livecache_client *client = doc_client(NULL);
    struct {
        const char *arg, *key;
    } cases[] = {
        {"{\"page\":2,\"id\":1}", "getDoc({\"id\":1,\"page\":2})"},
        {"{\"b\":{\"z\":1,\"a\":[1.0,{\"y\":2,\"x\":null}]},\"a\":\"\\u00e9\"}", "getDoc({\"a\":\"\xc3\xa9\",\"b\":{\"a\":[1,{\"x\":null,\"y\":2}],\"z\":1}})"},
        {NULL, "getDoc(undefined)"},
        {"null", "getDoc(null)"},
        {"\"redux\"", "getDoc(\"redux\")"},
        {" 1.50 ", "getDoc(1.5)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *key = NULL;
        CHECK_OK(livecache_cache_key(client, "getDoc", cases[i].arg, &key));
        CHECK(key && strcmp(key, cases[i].key) == 0, "key of %s: %s, expected %s", cases[i].arg ? cases[i].arg : "NULL",
              key ? key : "(none)", cases[i].key);
        livecache_string_free(key);
    }
    livecache_client_free(client);
}

/* ---- error codes and messages ---- */

#define SENTINEL ((void *)0x1)

static void bad_config_gives_config_errors(void) {
    struct {
        const char *config;
        livecache_result rc;
        const char *message_part;
    } cases[] = {
        {"{\"endpoints\": {\"getPost\": {\"query\": \"posts/{arg.}\"}}}", LIVECACHE_RESULT_CONFIG, "endpoints.getPost.query"},
        {"{\"endpoints\": {\"getPost\": {\"query\": \"p\", \"bogus\": 1}}}", LIVECACHE_RESULT_CONFIG, "bogus"},
        {"{\"keepUnusedDataFor\": -1, \"endpoints\": {\"a\": {\"query\": \"x\"}}}", LIVECACHE_RESULT_CONFIG, "keepUnusedDataFor"},
        {"{\"baseUrl\": \"http://x/\"}", LIVECACHE_RESULT_CONFIG, "endpoints"},
        {"[1,2]", LIVECACHE_RESULT_CONFIG, "object"},
        {"{\"endpoints\": ", LIVECACHE_RESULT_INVALID_JSON, "config_json"},
        {"{\"endpoints\": {}} trailing", LIVECACHE_RESULT_INVALID_JSON, "trailing"},
        {"{\"endpoints\": {\"a\": {\"query\": \"x\", \"keepUnusedDataFor\": NaN}}}", LIVECACHE_RESULT_INVALID_JSON, "NaN"},
        {"{\"endpoints\": {\"\xff\": {}}}", LIVECACHE_RESULT_INVALID_UTF8, "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        livecache_client *client = SENTINEL;
        CHECK_RC(livecache_client_new(cases[i].config, &client), cases[i].rc);
        CHECK(client == SENTINEL, "out-parameter written on failure (case %zu)", i);
        CHECK(strstr(livecache_last_error(), cases[i].message_part) != NULL, "case %zu: message \"%s\" lacks \"%s\"", i,
              livecache_last_error(), cases[i].message_part);
    }
    CHECK(strcmp(livecache_result_kind(LIVECACHE_RESULT_CONFIG), "ConfigError") == 0, "kind name");
    /* Any int is a valid argument: a code this library does not have is "Unknown". */
    CHECK(strcmp(livecache_result_kind(999), "Unknown") == 0, "kind of an unknown code");
    CHECK(strcmp(livecache_result_kind(-1), "Unknown") == 0, "kind of a negative code");

    /* Options and hooks are checked too. */
    const char *good = "{\"endpoints\": {\"getDoc\": {\"query\": \"d\"}}}";
    const char *bad_options[] = {"{\"delivery\": \"later\"}", "{\"workerThreads\": 0}", "{\"colour\": 1}", "[]"};
    for (size_t i = 0; i < 4; i++) {
        livecache_client *client = SENTINEL;
        CHECK_RC(livecache_client_new_with_options(good, bad_options[i], NULL, &client), LIVECACHE_RESULT_CONFIG);
        CHECK(client == SENTINEL, "out-parameter written on failure");
    }
    livecache_client *client = SENTINEL;
    CHECK_RC(livecache_client_new_with_options(good, "{bad", NULL, &client), LIVECACHE_RESULT_INVALID_JSON);
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getNothing", query_const, (void *)"1"));
    CHECK_RC(livecache_client_new_with_options(good, NULL, hooks, &client), LIVECACHE_RESULT_CONFIG);
    CHECK(strstr(livecache_last_error(), "hooks.getNothing") != NULL, "message: %s", livecache_last_error());
    CHECK(client == SENTINEL, "out-parameter written on failure");
    livecache_hooks_free(hooks);
}

static void bad_json_arguments(void) {
    livecache_client *client = doc_client(NULL);
    char *out = SENTINEL;
    livecache_subscription *sub = SENTINEL;
    CHECK_RC(livecache_subscribe(client, "getDoc", "{\"a\":", recorder_cb, NULL, &sub), LIVECACHE_RESULT_INVALID_JSON);
    CHECK(strstr(livecache_last_error(), "arg_json") != NULL, "message names the argument: %s", livecache_last_error());
    CHECK(sub == SENTINEL, "out-parameter written on failure");
    CHECK_RC(livecache_snapshot(client, "getDoc", "[1,]", &out), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_snapshot(client, "getDoc", "Infinity", &out), LIVECACHE_RESULT_INVALID_JSON);
    CHECK(out == SENTINEL, "out-parameter written on failure");
    CHECK_OK(livecache_upsert_query_data(client, "getDoc", "1", "{\"n\":1}"));
    CHECK_RC(livecache_upsert_query_data(client, "getDoc", "1", "{\"n\":NaN}"), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_patch_query_data(client, "getDoc", "1", "[{\"op\":", &out), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_patch_query_data(client, "getDoc", "1", "{\"op\":\"add\"}", &out), LIVECACHE_RESULT_PATCH);
    CHECK(out == SENTINEL, "out-parameter written on failure");
    /* Deeper than 128 levels. */
    char deep[600];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    deep[400] = 0;
    CHECK_RC(livecache_snapshot(client, "getDoc", deep, &out), LIVECACHE_RESULT_INVALID_JSON);
    CHECK(strstr(livecache_last_error(), "128") != NULL, "depth message: %s", livecache_last_error());
    CHECK(strcmp(livecache_result_kind(LIVECACHE_RESULT_INVALID_JSON), "InvalidInput") == 0, "kind name");
    CHECK(version_of(client, "getDoc", "1") == 1, "nothing changed");
    livecache_client_free(client);
}

static void unknown_endpoint(void) {
    livecache_client *client = doc_client(NULL);
    livecache_subscription *sub = SENTINEL;
    char *out = SENTINEL;
    CHECK_RC(livecache_subscribe(client, "getNothing", NULL, recorder_cb, NULL, &sub), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK(strstr(livecache_last_error(), "getNothing") != NULL, "message: %s", livecache_last_error());
    CHECK(sub == SENTINEL, "out-parameter written on failure");
    CHECK_RC(livecache_snapshot(client, "getNothing", NULL, &out), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK_RC(livecache_push_message(client, "getNothing", NULL, "{}"), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK_RC(livecache_patch_query_data(client, "getNothing", NULL, "[]", &out), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK_RC(livecache_upsert_query_data(client, "getNothing", NULL, "1"), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK_RC(livecache_refetch(client, "getNothing", NULL), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK_RC(livecache_cache_key(client, "getNothing", NULL, &out), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK(out == SENTINEL, "out-parameter written on failure");
    CHECK(strcmp(livecache_result_kind(LIVECACHE_RESULT_UNKNOWN_ENDPOINT), "UnknownEndpoint") == 0, "kind name");
    livecache_client_free(client);
}

static void update_noop(void *u, const char *d, livecache_update *up) {
    (void)u;
    (void)d;
    (void)up;
}

static void null_arguments(void) {
    livecache_client *client = doc_client(NULL);
    livecache_subscription *sub = NULL;
    char *out = NULL;
    int fd;
    size_t count;
    const livecache_result N = LIVECACHE_RESULT_NULL_PARAMETER;
    CHECK_RC(livecache_client_new(NULL, &client), N);
    CHECK_RC(livecache_client_new("{}", NULL), N);
    CHECK_RC(livecache_client_new_with_options(NULL, NULL, NULL, NULL), N);
    CHECK(strstr(livecache_last_error(), "NULL") != NULL, "message: %s", livecache_last_error());
    CHECK_RC(livecache_subscribe(NULL, "getDoc", NULL, recorder_cb, NULL, &sub), N);
    CHECK_RC(livecache_subscribe(client, NULL, NULL, recorder_cb, NULL, &sub), N);
    CHECK_RC(livecache_subscribe(client, "getDoc", NULL, NULL, NULL, &sub), N);
    CHECK_RC(livecache_subscribe(client, "getDoc", NULL, recorder_cb, NULL, NULL), N);
    CHECK_RC(livecache_snapshot(NULL, "getDoc", NULL, &out), N);
    CHECK_RC(livecache_snapshot(client, NULL, NULL, &out), N);
    CHECK_RC(livecache_snapshot(client, "getDoc", NULL, NULL), N);
    CHECK_RC(livecache_patch_query_data(NULL, "getDoc", NULL, "[]", &out), N);
    CHECK_RC(livecache_patch_query_data(client, NULL, NULL, "[]", &out), N);
    CHECK_RC(livecache_patch_query_data(client, "getDoc", NULL, NULL, &out), N);
    CHECK_RC(livecache_update_query_data(client, "getDoc", NULL, NULL, NULL, &out), N);
    CHECK_RC(livecache_update_query_data(NULL, "getDoc", NULL, update_noop, NULL, &out), N);
    CHECK_RC(livecache_upsert_query_data(NULL, "getDoc", NULL, "1"), N);
    CHECK_RC(livecache_upsert_query_data(client, NULL, NULL, "1"), N);
    CHECK_RC(livecache_upsert_query_data(client, "getDoc", NULL, NULL), N);
    CHECK_RC(livecache_refetch(NULL, "getDoc", NULL), N);
    CHECK_RC(livecache_refetch(client, NULL, NULL), N);
    CHECK_RC(livecache_push_message(NULL, "getDoc", NULL, "1"), N);
    CHECK_RC(livecache_push_message(client, NULL, NULL, "1"), N);
    CHECK_RC(livecache_push_message(client, "getDoc", NULL, NULL), N);
    CHECK_RC(livecache_stats(NULL, &out), N);
    CHECK_RC(livecache_stats(client, NULL), N);
    CHECK_RC(livecache_cache_key(client, "getDoc", NULL, NULL), N);
    CHECK_RC(livecache_client_poll(NULL, 0, &count), N);
    CHECK_RC(livecache_client_fd(NULL, &fd), N);
    CHECK_RC(livecache_client_fd(client, NULL), N);
    CHECK_RC(livecache_client_close(NULL), N);
    CHECK_RC(livecache_subscription_snapshot(NULL, &out), N);
    CHECK_RC(livecache_hooks_new(NULL), N);
    CHECK_RC(livecache_hooks_set_query_fn(NULL, "getDoc", query_const, NULL), N);
    CHECK_RC(livecache_request_fulfill(NULL, "1"), N);
    CHECK_RC(livecache_request_reject(NULL, NULL), N);
    CHECK_RC(livecache_update_set_data(NULL, "1"), N);
    CHECK_RC(livecache_update_set_patches(NULL, "[]"), N);
    CHECK_RC(livecache_update_fail(NULL, "x"), N);
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_RC(livecache_hooks_set_query_fn(hooks, NULL, query_const, NULL), N);
    CHECK_RC(livecache_hooks_set_query_fn(hooks, "getDoc", NULL, NULL), N);
    CHECK_RC(livecache_hooks_set_on_message(hooks, "getDoc", NULL, NULL), N);
    CHECK_RC(livecache_hooks_set_transform_response(hooks, "getDoc", NULL, NULL), N);
    livecache_hooks_free(hooks);
    CHECK(out == NULL && sub == NULL, "out-parameters written on failure");
    CHECK(livecache_subscription_key(NULL) == NULL, "key of NULL");
    CHECK(livecache_request_key(NULL) == NULL, "request key of NULL");
    CHECK(strcmp(livecache_result_kind(N), "NullParameter") == 0, "kind name");
    /* Every release function accepts NULL. */
    livecache_unsubscribe(NULL);
    livecache_string_free(NULL);
    livecache_hooks_free(NULL);
    livecache_client_free(NULL);
    livecache_client_free(client);
}

static void non_utf8_strings(void) {
    livecache_client *client = doc_client(NULL);
    livecache_subscription *sub = SENTINEL;
    char *out = SENTINEL;
    const livecache_result U = LIVECACHE_RESULT_INVALID_UTF8;
    CHECK_RC(livecache_subscribe(client, "get\xc3\x28", NULL, recorder_cb, NULL, &sub), U);
    CHECK(strstr(livecache_last_error(), "endpoint") != NULL && strstr(livecache_last_error(), "byte offset 3") != NULL,
          "message: %s", livecache_last_error());
    CHECK_RC(livecache_subscribe(client, "getDoc", "\"\xff\"", recorder_cb, NULL, &sub), U);
    CHECK(sub == SENTINEL, "out-parameter written on failure");
    CHECK_RC(livecache_snapshot(client, "getDoc", "\"\xed\xa0\x80\"", &out), U); /* a UTF-16 surrogate */
    CHECK_OK(livecache_upsert_query_data(client, "getDoc", "1", "{}"));
    CHECK_RC(livecache_push_message(client, "getDoc", "1", "{\"t\":\"\xc0\xaf\"}"), U);
    CHECK_RC(livecache_upsert_query_data(client, "getDoc", "1", "\"\xf8\x88\x80\x80\x80\""), U);
    CHECK_RC(livecache_patch_query_data(client, "getDoc", "1", "[\xfe]", &out), U);
    CHECK(out == SENTINEL, "out-parameter written on failure");
    CHECK(strcmp(livecache_result_kind(U), "InvalidInput") == 0, "kind name");
    livecache_client_free(client);
}

static void not_found_not_loaded_patch_and_closed(void) {
    livecache_client *client = doc_client(NULL);
    char *out = SENTINEL;
    CHECK_RC(livecache_snapshot(client, "getDoc", "404", &out), LIVECACHE_RESULT_NOT_FOUND);
    CHECK(strstr(livecache_last_error(), "getDoc(404)") != NULL, "message: %s", livecache_last_error());
    CHECK_RC(livecache_push_message(client, "getDoc", "404", "{}"), LIVECACHE_RESULT_NOT_FOUND);
    CHECK_RC(livecache_patch_query_data(client, "getDoc", "404", "[]", &out), LIVECACHE_RESULT_NOT_FOUND);
    CHECK_RC(livecache_refetch(client, "getDoc", "404"), LIVECACHE_RESULT_NOT_FOUND);

    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getPending", NULL, recorder_cb, &rec, &sub));
    CHECK_RC(livecache_patch_query_data(client, "getPending", NULL, "[{\"op\":\"add\",\"path\":\"/a\",\"value\":1}]", &out),
             LIVECACHE_RESULT_NOT_LOADED);
    CHECK_RC(livecache_update_query_data(client, "getPending", NULL, update_noop, NULL, &out), LIVECACHE_RESULT_NOT_LOADED);
    CHECK(strcmp(livecache_result_kind(LIVECACHE_RESULT_NOT_LOADED), "NotLoaded") == 0, "kind name");

    CHECK_OK(livecache_upsert_query_data(client, "getDoc", "1", "{\"n\":1}"));
    CHECK_RC(livecache_patch_query_data(client, "getDoc", "1",
                                        "[{\"op\":\"replace\",\"path\":\"/n\",\"value\":2},{\"op\":\"test\",\"path\":\"/n\",\"value\":1}]",
                                        &out),
             LIVECACHE_RESULT_PATCH);
    CHECK_RC(livecache_patch_query_data(client, "getDoc", "1", "[{\"op\":\"jump\",\"path\":\"/n\"}]", &out), LIVECACHE_RESULT_PATCH);
    CHECK(out == SENTINEL, "out-parameter written on failure");
    jvalue *snap = snapshot_of(client, "getDoc", "1");
    CHECK(json_get(json_get(snap, "data"), "n")->num == 1 && json_get(snap, "version")->num == 1, "a failed patch changes nothing");
    json_free(snap);

    /* Closed: every call says so; closing again does nothing. */
    CHECK_OK(livecache_client_close(client));
    CHECK_OK(livecache_client_close(client));
    CHECK(rec.removed || recorder_wait_count(&rec, "removed", 1, WAIT), "removed event before close returned");
    livecache_subscription *sub2 = SENTINEL;
    const livecache_result C = LIVECACHE_RESULT_CLOSED;
    CHECK_RC(livecache_subscribe(client, "getDoc", NULL, recorder_cb, NULL, &sub2), C);
    CHECK(sub2 == SENTINEL, "out-parameter written on failure");
    CHECK_RC(livecache_snapshot(client, "getDoc", "1", &out), C);
    CHECK_RC(livecache_stats(client, &out), C);
    CHECK_RC(livecache_push_message(client, "getDoc", "1", "{}"), C);
    CHECK_RC(livecache_push_messages(client, "getDoc", "1", "[{}]"), C);
    CHECK_RC(livecache_upsert_query_data(client, "getDoc", "1", "{}"), C);
    CHECK_RC(livecache_patch_query_data(client, "getDoc", "1", "[]", &out), C);
    CHECK_RC(livecache_refetch(client, "getDoc", "1"), C);
    CHECK_RC(livecache_subscription_snapshot(sub, &out), C);
    CHECK(out == SENTINEL, "out-parameter written on failure");
    CHECK(strcmp(livecache_result_kind(C), "Closed") == 0, "kind name");
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    release_pending();
    recorder_destroy(&rec);
}

static void *fail_on_thread(void *arg) {
    (void)arg;
    CHECK(strcmp(livecache_last_error(), "") == 0, "a new thread starts with no error: %s", livecache_last_error());
    livecache_client *client = NULL;
    livecache_client_new("[", &client);
    return NULL;
}

static void last_error_is_per_thread(void) {
    livecache_client *client = NULL;
    CHECK_RC(livecache_client_new("{\"endpoints\": {\"a\": {\"query\": \"{arg.}\"}}}", &client), LIVECACHE_RESULT_CONFIG);
    char mine[300];
    snprintf(mine, sizeof mine, "%s", livecache_last_error());
    pthread_t t;
    pthread_create(&t, NULL, fail_on_thread, NULL);
    pthread_join(t, NULL);
    CHECK(strcmp(mine, livecache_last_error()) == 0, "another thread's failure changed mine: %s", livecache_last_error());
    /* Success leaves the last error alone (like errno). */
    client = doc_client(NULL);
    CHECK(strcmp(mine, livecache_last_error()) == 0, "success changed the last error");
    livecache_client_free(client);
}

/* ---- callbacks that call back into livecache ---- */

typedef struct {
    recorder rec;
    livecache_client *client;
    livecache_subscription *sub;
    livecache_subscription *other;
    recorder other_rec;
    pthread_t thread;
    int calls;
    int after_unsubscribe;
    int unsubscribed;
} reentrant;

static void unsubscribe_self_cb(void *user_data, const char *json, size_t len) {
    reentrant *r = user_data;
    recorder_cb(&r->rec, json, len);
    pthread_mutex_lock(&r->rec.lock);
    r->calls++;
    if (r->unsubscribed) r->after_unsubscribe++;
    int first = !r->unsubscribed;
    r->unsubscribed = 1;
    r->thread = pthread_self();
    pthread_mutex_unlock(&r->rec.lock);
    if (first) {
        /* The handle is there even for the very first event (written before any callback). */
        livecache_unsubscribe(r->sub);
        r->sub = NULL;
        /* And the client is fully usable from here. */
        char *stats = NULL;
        CHECK_OK(livecache_stats(r->client, &stats));
        livecache_string_free(stats);
        CHECK_OK(livecache_push_message(r->client, "getMessages", "\"x\"", "{\"id\":99}"));
    }
}

static void callback_unsubscribes_itself(void) {
    reentrant r;
    memset(&r, 0, sizeof r);
    recorder_init(&r.rec);
    r.client = doc_client(NULL);
    CHECK_OK(livecache_subscribe(r.client, "getMessages", "\"x\"", unsubscribe_self_cb, &r, &r.sub));
    CHECK(recorder_wait_count(&r.rec, NULL, 1, WAIT), "no event");
    for (int i = 0; i < 20; i++) CHECK_OK(livecache_push_message(r.client, "getMessages", "\"x\"", "{\"id\":1}"));
    /* Wait until the engine applied them: the stats say so. */
    double deadline = now_seconds() + WAIT;
    for (;;) {
        char *stats = NULL;
        CHECK_OK(livecache_stats(r.client, &stats));
        jvalue *st = take_json(stats);
        int applied = st && json_get(st, "messagesApplied")->num >= 21;
        json_free(st);
        if (applied || now_seconds() > deadline) break;
        sleep_ms(5);
    }
    wait_delivered_so_far(r.client);
    pthread_mutex_lock(&r.rec.lock);
    CHECK(r.calls == 1, "callbacks after unsubscribing itself: %d calls", r.calls);
    CHECK(!pthread_equal(r.thread, pthread_self()), "callbacks run on the delivery thread, not the caller's");
    pthread_mutex_unlock(&r.rec.lock);
    char name[32] = "";
    pthread_getname_np(r.thread, name, sizeof name);
    CHECK(strncmp(name, "livecache-deliv", 15) == 0, "callback thread is %s", name);
    livecache_client_free(r.client);
    recorder_destroy(&r.rec);
}

static void subscribe_other_cb(void *user_data, const char *json, size_t len) {
    reentrant *r = user_data;
    recorder_cb(&r->rec, json, len);
    if (!r->other && strstr(json, "\"type\":\"snapshot\"")) {
        CHECK_OK(livecache_subscribe(r->client, "getDoc", "\"other\"", recorder_cb, &r->other_rec, &r->other));
        /* A host update from a callback: synchronous for snapshot, events follow. */
        CHECK_OK(livecache_push_message(r->client, "getMessages", "\"a\"", "{\"id\":5}"));
    }
}

static void callback_subscribes_another_key(void) {
    reentrant r;
    memset(&r, 0, sizeof r);
    recorder_init(&r.rec);
    recorder_init(&r.other_rec);
    r.client = doc_client(NULL);
    CHECK_OK(livecache_subscribe(r.client, "getMessages", "\"a\"", subscribe_other_cb, &r, &r.sub));
    CHECK(recorder_wait_version(&r.rec, 2, WAIT), "the message pushed from the callback arrived");
    CHECK(recorder_wait_version(&r.other_rec, 1, WAIT), "the key subscribed from a callback got its snapshot");
    CHECK(r.other != NULL, "no subscription handle");
    if (r.other) {
        CHECK(strcmp(livecache_subscription_key(r.other), "getDoc(\"other\")") == 0, "key");
        check_replica(&r.other_rec, r.other);
    }
    check_replica(&r.rec, r.sub);
    livecache_unsubscribe(r.other);
    livecache_unsubscribe(r.sub);
    livecache_client_free(r.client);
    recorder_destroy(&r.rec);
    recorder_destroy(&r.other_rec);
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inside, finished, calls_after;
    int unsubscribed;
    livecache_client *client;
} slow_ctx;

static int no_subscriptions(livecache_client *client) {
    char *stats = NULL;
    if (livecache_stats(client, &stats) != LIVECACHE_RESULT_OK) return 0;
    jvalue *st = take_json(stats);
    int none = st && json_get(st, "subscriptions")->num == 0;
    json_free(st);
    return none;
}

static void slow_cb(void *user_data, const char *json, size_t len) {
    (void)json;
    (void)len;
    slow_ctx *c = user_data;
    pthread_mutex_lock(&c->lock);
    if (c->unsubscribed) c->calls_after++;
    c->inside = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    /* Still running when the main thread's livecache_unsubscribe starts: it takes the subscription
     * off the count, then waits for this callback. */
    double deadline = now_seconds() + WAIT;
    while (!no_subscriptions(c->client) && now_seconds() < deadline) sleep_ms(1);
    pthread_mutex_lock(&c->lock);
    c->finished++;
    pthread_mutex_unlock(&c->lock);
}

static void unsubscribe_waits_for_a_running_callback(void) {
    livecache_client *client = doc_client(NULL);
    slow_ctx c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    c.client = client;
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"s\"", slow_cb, &c, &sub));
    for (int i = 0; i < 5; i++) CHECK_OK(livecache_upsert_query_data(client, "getMessages", "\"s\"", "[1]"));
    pthread_mutex_lock(&c.lock);
    while (!c.inside) pthread_cond_wait(&c.cond, &c.lock);
    pthread_mutex_unlock(&c.lock);
    livecache_unsubscribe(sub);
    pthread_mutex_lock(&c.lock);
    c.unsubscribed = 1;
    CHECK(c.finished >= 1, "unsubscribe returned while the callback was running");
    pthread_mutex_unlock(&c.lock);
    wait_delivered_so_far(client); /* the upserts' events were queued before the unsubscribe */
    pthread_mutex_lock(&c.lock);
    CHECK(c.calls_after == 0, "%d callbacks started after unsubscribe returned", c.calls_after);
    pthread_mutex_unlock(&c.lock);
    livecache_client_free(client);
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.cond);
}

/* ---- pull mode ---- */

static pthread_t poll_thread;
static int callbacks_on_other_thread;

static void pull_cb(void *user_data, const char *json, size_t len) {
    if (!pthread_equal(pthread_self(), poll_thread)) callbacks_on_other_thread++;
    recorder_cb(user_data, json, len);
}

static int readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    int n;
    do n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    return n == 1 && (p.revents & POLLIN);
}

/* Waits on the descriptor and polls until the replica reaches `version`. */
static int pump_until(livecache_client *client, int fd, recorder *rec, long version) {
    double deadline = now_seconds() + WAIT;
    while (rec->version < version && now_seconds() < deadline) {
        if (!readable(fd, 1000)) continue;
        size_t ran = 0;
        CHECK_OK(livecache_client_poll(client, 0, &ran));
    }
    return rec->version >= version;
}

static void pull_mode_with_the_file_descriptor(void) {
    poll_thread = pthread_self();
    callbacks_on_other_thread = 0;
    livecache_client *client = doc_client("{\"delivery\": \"poll\", \"workerThreads\": 1}");
    int fd = -1;
    CHECK_OK(livecache_client_fd(client, &fd));
    CHECK(fd >= 0, "descriptor");
    CHECK(!readable(fd, 0), "readable before anything happened");
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"p\"", pull_cb, &rec, &sub));
    /* Events are queued (the data is there, the descriptor says so), and none has run. */
    CHECK(wait_data(client, "getMessages", "\"p\""), "no data");
    CHECK(readable(fd, (int)(WAIT * 1000)), "not readable with events queued");
    CHECK(recorder_count(&rec, NULL) == 0, "a callback ran outside livecache_client_poll");
    CHECK(pump_until(client, fd, &rec, 1), "no snapshot through poll");
    for (int i = 1; i <= 50; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "{\"id\":%d}", i);
        CHECK_OK(livecache_push_message(client, "getMessages", "\"p\"", msg));
    }
    CHECK(pump_until(client, fd, &rec, 51), "replica at %ld", rec.version);
    check_replica(&rec, sub);
    /* Drained: nothing ready, the descriptor is quiet and a poll with a timeout returns 0. */
    size_t ran = 99;
    CHECK_OK(livecache_client_poll(client, 0, &ran));
    CHECK(!readable(fd, 0), "readable with nothing to run");
    CHECK_OK(livecache_client_poll(client, 20, &ran));
    CHECK(ran == 0, "%zu callbacks ran with nothing queued", ran);
    CHECK_OK(livecache_client_poll(client, 0, NULL));
    CHECK(callbacks_on_other_thread == 0, "%d callbacks ran on another thread", callbacks_on_other_thread);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);

    /* Pull-mode calls on a thread-delivery client are refused. */
    client = doc_client(NULL);
    CHECK_RC(livecache_client_fd(client, &fd), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(livecache_client_poll(client, 0, &ran), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(livecache_last_error(), "poll") != NULL, "message: %s", livecache_last_error());
    livecache_client_free(client);
}

typedef struct {
    livecache_client *client;
    size_t ran;
    livecache_result rc;
} waiter;

static recorder *waiter_rec;

static void *wait_forever(void *arg) {
    waiter *w = arg;
    do {
        size_t ran = 0;
        w->rc = livecache_client_poll(w->client, -1, &ran);
        w->ran += ran;
    } while (w->rc == LIVECACHE_RESULT_OK && waiter_rec->version < 1);
    return NULL;
}

static void pull_mode_blocking_poll_wakes_up(void) {
    recorder rec;
    recorder_init(&rec);
    livecache_client *client = doc_client("{\"delivery\": \"poll\"}");
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getDoc", "1", recorder_cb, &rec, &sub));
    /* A poll that waits without a time limit returns once callbacks ran. */
    waiter w = {client, 0, LIVECACHE_RESULT_PANIC};
    waiter_rec = &rec;
    pthread_t t;
    pthread_create(&t, NULL, wait_forever, &w);
    pthread_join(t, NULL);
    CHECK(w.rc == LIVECACHE_RESULT_OK && w.ran >= 1, "poll(-1): rc %d, ran %zu", (int)w.rc, w.ran);
    CHECK(rec.version == 1, "snapshot delivered");
    livecache_unsubscribe(sub);
    /* On a closed client: CLOSED. */
    CHECK_OK(livecache_client_close(client));
    CHECK_RC(livecache_client_poll(client, 0, NULL), LIVECACHE_RESULT_CLOSED);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

/* ---- host hooks ---- */

typedef struct {
    livecache_request *request;
    char *arg;
    char *key;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} held_query;

static void query_later(void *user_data, const char *arg_json, livecache_request *request) {
    held_query *h = user_data;
    pthread_mutex_lock(&h->lock);
    h->request = request;
    free(h->arg);
    free(h->key);
    h->arg = arg_json ? strdup(arg_json) : strdup("(none)");
    h->key = strdup(livecache_request_key(request));
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void *fulfil_from_thread(void *arg) {
    held_query *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->request) pthread_cond_wait(&h->cond, &h->lock);
    livecache_request *request = h->request;
    h->request = NULL;
    pthread_mutex_unlock(&h->lock);
    sleep_ms(20);
    CHECK_OK(livecache_request_fulfill(request, "{\"from\":\"another thread\"}"));
    return NULL;
}

static void query_fn_answered_from_another_thread(void) {
    held_query h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getThing", query_later, &h));
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"getThing\": {}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    pthread_t t;
    pthread_create(&t, NULL, fulfil_from_thread, &h);
    CHECK_OK(livecache_subscribe(client, "getThing", "{\"b\":1,\"a\":2}", recorder_cb, &rec, &sub));
    CHECK(recorder_wait_version(&rec, 1, WAIT), "no data");
    pthread_join(t, NULL);
    CHECK(h.arg && strcmp(h.arg, "{\"b\":1,\"a\":2}") == 0, "arg_json: %s", h.arg);
    CHECK(h.key && strcmp(h.key, "getThing({\"a\":2,\"b\":1})") == 0, "request key: %s", h.key);
    CHECK(recorder_count(&rec, "status") >= 1, "a pending status event came first");
    jvalue *events = rec.events;
    CHECK(strcmp(json_string(json_get(events->items[0], "type")), "status") == 0, "first event is status");
    check_replica(&rec, sub);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
    free(h.arg);
    free(h.key);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

static void query_fn_rejects(void) {
    held_query h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getThing", query_later, &h));
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"getThing\": {}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getThing", NULL, recorder_cb, &rec, &sub));
    pthread_mutex_lock(&h.lock);
    while (!h.request) pthread_cond_wait(&h.cond, &h.lock);
    livecache_request *request = h.request;
    h.request = NULL;
    pthread_mutex_unlock(&h.lock);
    CHECK(strcmp(h.arg, "(none)") == 0, "no arg is NULL: %s", h.arg);
    CHECK_OK(livecache_request_reject(request, "{\"status\":500,\"data\":\"down\"}"));
    CHECK(recorder_wait_count(&rec, "status", 2, WAIT), "no rejected status");
    jvalue *snap = snapshot_of(client, "getThing", NULL);
    CHECK(strcmp(json_string(json_get(snap, "status")), "rejected") == 0, "status rejected (L6)");
    CHECK(json_get(json_get(snap, "error"), "status")->num == 500, "error value kept");
    json_free(snap);

    /* An answer that is not JSON still ends the request (rejected), with an error code. */
    free(h.arg);
    h.arg = NULL;
    CHECK_OK(livecache_refetch(client, "getThing", NULL));
    pthread_mutex_lock(&h.lock);
    while (!h.request) pthread_cond_wait(&h.cond, &h.lock);
    request = h.request;
    h.request = NULL;
    pthread_mutex_unlock(&h.lock);
    CHECK_RC(livecache_request_fulfill(request, "{oops"), LIVECACHE_RESULT_INVALID_JSON);
    double deadline = now_seconds() + WAIT;
    int parsing_error = 0;
    while (!parsing_error && now_seconds() < deadline) {
        snap = snapshot_of(client, "getThing", NULL);
        const char *status = json_string(json_get(json_get(snap, "error"), "status"));
        parsing_error = status && strcmp(status, "PARSING_ERROR") == 0;
        json_free(snap);
        if (!parsing_error) sleep_ms(5);
    }
    CHECK(parsing_error, "bad data from the host gives PARSING_ERROR");
    livecache_unsubscribe(sub);
    /* A request answered after the client is gone only releases it. */
    free(h.arg);
    h.arg = NULL;
    CHECK_OK(livecache_refetch(client, "getThing", NULL));
    pthread_mutex_lock(&h.lock);
    while (!h.request) pthread_cond_wait(&h.cond, &h.lock);
    request = h.request;
    pthread_mutex_unlock(&h.lock);
    livecache_client_free(client);
    CHECK_OK(livecache_request_fulfill(request, "1"));
    recorder_destroy(&rec);
    free(h.arg);
    free(h.key);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

/* The per-message updater: {"op":"inc","by":N} adds N to /count with one RFC 6902 op; "skip"
 * changes nothing; anything else is refused. */
static int updater_calls;

static void count_updater(void *user_data, const char *data_json, const char *message_json, const char *arg_json,
                          livecache_update *update) {
    (void)user_data;
    updater_calls++;
    CHECK(arg_json && strcmp(arg_json, "\"c\"") == 0, "arg_json %s", arg_json ? arg_json : "NULL");
    jvalue *data = json_parse_or_die(data_json), *msg = json_parse_or_die(message_json);
    const char *op = json_string(json_get(msg, "op"));
    if (op && strcmp(op, "inc") == 0) {
        double count = json_get(data, "count") ? json_get(data, "count")->num : 0;
        char ops[128];
        snprintf(ops, sizeof ops, "[{\"op\":\"replace\",\"path\":\"/count\",\"value\":%g}]", count + json_get(msg, "by")->num);
        CHECK_OK(livecache_update_set_patches(update, ops));
    } else if (op && strcmp(op, "skip") == 0) {
        /* no change */
    } else if (op && strcmp(op, "bad-patch") == 0) {
        CHECK_OK(livecache_update_set_patches(update, "[{\"op\":\"remove\",\"path\":\"/nothing\"}]"));
    } else {
        CHECK_OK(livecache_update_fail(update, "unknown op"));
    }
    json_free(data);
    json_free(msg);
}

/* The counter entry reached `version` with `/count` == `count`, and the events replay to it. */
static void check_counter(livecache_client *client, recorder *rec, livecache_subscription *sub, double count, long version) {
    CHECK(recorder_wait_version(rec, version, WAIT), "replica at %ld", rec->version);
    jvalue *snap = snapshot_of(client, "getCounter", "\"c\"");
    const jvalue *n = json_get(json_get(snap, "data"), "count");
    CHECK(n && n->num == count, "count");
    CHECK(json_get(snap, "version")->num == version, "version");
    json_free(snap);
    check_replica(rec, sub);
}

static void on_message_updater_returns_patches(void) {
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getCounter", query_const, (void *)"{\"count\":0}"));
    CHECK_OK(livecache_hooks_set_on_message(hooks, "getCounter", count_updater, NULL));
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"getCounter\": {\"stream\": {}}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getCounter", "\"c\"", recorder_cb, &rec, &sub));
    CHECK(recorder_wait_version(&rec, 1, WAIT), "no snapshot");
    CHECK_OK(livecache_push_message(client, "getCounter", "\"c\"", "{\"op\":\"inc\",\"by\":2}"));
    CHECK_OK(livecache_push_message(client, "getCounter", "\"c\"", "{\"op\":\"skip\"}"));
    CHECK_OK(livecache_push_message(client, "getCounter", "\"c\"", "{\"op\":\"what\"}"));
    CHECK_OK(livecache_push_message(client, "getCounter", "\"c\"", "{\"op\":\"bad-patch\"}"));
    CHECK_OK(livecache_push_message(client, "getCounter", "\"c\"", "{\"op\":\"inc\",\"by\":3}"));
    CHECK(recorder_wait_count(&rec, "error", 2, WAIT), "error events");
    check_counter(client, &rec, sub, 5, 3);
    pthread_mutex_lock(&rec.lock);
    const char *reasons[2] = {NULL, NULL};
    for (size_t i = 0, k = 0; i < rec.events->n && k < 2; i++)
        if (strcmp(json_string(json_get(rec.events->items[i], "type")), "error") == 0)
            reasons[k++] = json_string(json_get(rec.events->items[i], "reason"));
    CHECK(reasons[0] && strcmp(reasons[0], "hook") == 0, "a refused message is a hook error: %s", reasons[0]);
    CHECK(reasons[1] && strcmp(reasons[1], "apply") == 0, "patches that do not apply are an apply error: %s", reasons[1]);
    pthread_mutex_unlock(&rec.lock);
    CHECK(updater_calls == 5, "updater calls: %d", updater_calls);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

/* The batched updater: one call per burst, the data parsed once for all its messages; the
 * same ops as count_updater. Logs each call's size. */
typedef struct batch_log {
    pthread_mutex_t lock;
    int calls;
    size_t sizes[16];
} batch_log;

static void count_batch_updater(void *user_data, const char *data_json, const char *messages_json, size_t count,
                                const char *arg_json, livecache_update *const *updates) {
    batch_log *log = user_data;
    pthread_mutex_lock(&log->lock);
    if (log->calls < 16) log->sizes[log->calls] = count;
    log->calls++;
    pthread_mutex_unlock(&log->lock);
    CHECK(arg_json && strcmp(arg_json, "\"c\"") == 0, "arg_json %s", arg_json ? arg_json : "NULL");
    jvalue *data = json_parse_or_die(data_json), *msgs = json_parse_or_die(messages_json);
    CHECK(msgs->type == J_ARRAY && msgs->n == count, "messages_json holds the %zu messages: %s", count, messages_json);
    double value = json_get(data, "count") ? json_get(data, "count")->num : 0;
    for (size_t i = 0; i < count && i < msgs->n; i++) {
        const char *op = json_string(json_get(msgs->items[i], "op"));
        if (op && strcmp(op, "inc") == 0) {
            /* Built on the data as the changes before it in this call left it. */
            value += json_get(msgs->items[i], "by")->num;
            char ops[128];
            snprintf(ops, sizeof ops, "[{\"op\":\"replace\",\"path\":\"/count\",\"value\":%g}]", value);
            CHECK_OK(livecache_update_set_patches(updates[i], ops));
        } else if (!(op && strcmp(op, "skip") == 0)) {
            CHECK_OK(livecache_update_fail(updates[i], "unknown op"));
        }
    }
    json_free(data);
    json_free(msgs);
}

/* Messages queued before the data (L4) reach the batched hook in one call; each change builds
 * on the one before it, a failed message is an error event of its own, and the replica of the
 * events equals the engine's data. */
static void on_messages_updater_takes_a_burst_in_one_call(void) {
    batch_log log = {.calls = 0};
    pthread_mutex_init(&log.lock, NULL);
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getCounter", query_hold, NULL));
    CHECK_RC(livecache_hooks_set_on_messages(hooks, "getCounter", NULL, NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    /* Both set: the batched one is used. */
    CHECK_OK(livecache_hooks_set_on_message(hooks, "getCounter", count_updater, NULL));
    CHECK_OK(livecache_hooks_set_on_messages(hooks, "getCounter", count_batch_updater, &log));
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"getCounter\": {\"stream\": {}}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    int before = updater_calls;
    CHECK_OK(livecache_subscribe(client, "getCounter", "\"c\"", recorder_cb, &rec, &sub));
    const char *burst[] = {"{\"op\":\"inc\",\"by\":1}", "{\"op\":\"inc\",\"by\":2}", "{\"op\":\"what\"}",
                           "{\"op\":\"skip\"}", "{\"op\":\"inc\",\"by\":3}"};
    for (size_t i = 0; i < 5; i++) CHECK_OK(livecache_push_message(client, "getCounter", "\"c\"", burst[i]));
    /* Held until every message is buffered, so all five go in the first call. */
    double deadline = now_seconds() + WAIT;
    long buffered = 0;
    while (buffered < 5 && now_seconds() < deadline) {
        char *stats = NULL;
        CHECK_OK(livecache_stats(client, &stats));
        jvalue *st = take_json(stats);
        buffered = (long)json_get(st, "messagesBuffered")->num;
        json_free(st);
        if (buffered < 5) sleep_ms(2);
    }
    CHECK(buffered == 5, "messages buffered: %ld", buffered);
    /* The query is asked on an engine thread, which may come after the messages were buffered. */
    livecache_request *request = NULL;
    while (now_seconds() < deadline) {
        pthread_mutex_lock(&pending_lock);
        request = pending_request;
        pending_request = NULL;
        pthread_mutex_unlock(&pending_lock);
        if (request) break;
        sleep_ms(2);
    }
    CHECK(request != NULL, "the query was never asked");
    if (request) CHECK_OK(livecache_request_fulfill(request, "{\"count\":10}"));
    CHECK(recorder_wait_count(&rec, "error", 1, WAIT), "error event");
    check_counter(client, &rec, sub, 16, 4);
    pthread_mutex_lock(&log.lock);
    CHECK(log.calls == 1 && log.sizes[0] == 5, "one call with the 5 messages: %d calls, the first of %zu", log.calls,
          log.sizes[0]);
    pthread_mutex_unlock(&log.lock);
    CHECK(updater_calls == before, "the per-message hook is not called when the batched one is set");
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
    pthread_mutex_destroy(&log.lock);
}

static void transform_wrap(void *user_data, const char *data_json, const char *arg_json, livecache_update *update) {
    (void)user_data;
    if (strcmp(data_json, "\"fail\"") == 0) {
        livecache_update_fail(update, "cannot transform");
        return;
    }
    char out[256];
    snprintf(out, sizeof out, "{\"wrapped\":%s,\"arg\":%s}", data_json, arg_json ? arg_json : "null");
    CHECK_OK(livecache_update_set_data(update, out));
}

static void transform_response_hook(void) {
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "a", query_const, (void *)"[1,2]"));
    CHECK_OK(livecache_hooks_set_transform_response(hooks, "a", transform_wrap, NULL));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "b", query_const, (void *)"\"fail\""));
    CHECK_OK(livecache_hooks_set_transform_response(hooks, "b", transform_wrap, NULL));
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"a\": {}, \"b\": {}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    recorder ra, rb;
    recorder_init(&ra);
    recorder_init(&rb);
    livecache_subscription *sa = NULL, *sb = NULL;
    CHECK_OK(livecache_subscribe(client, "a", "3", recorder_cb, &ra, &sa));
    CHECK_OK(livecache_subscribe(client, "b", NULL, recorder_cb, &rb, &sb));
    CHECK(recorder_wait_version(&ra, 1, WAIT), "no data");
    char *text = recorder_replica_text(&ra);
    CHECK(text && strcmp(text, "{\"wrapped\":[1,2],\"arg\":3}") == 0, "transformed: %s", text);
    free(text);
    CHECK(recorder_wait_count(&rb, "status", 2, WAIT), "no rejected status for b");
    jvalue *snap = snapshot_of(client, "b", NULL);
    CHECK(strcmp(json_string(json_get(snap, "status")), "rejected") == 0, "status");
    char *err = json_dump(json_get(snap, "error"));
    CHECK(strstr(err, "cannot transform") != NULL, "error %s", err);
    free(err);
    json_free(snap);
    livecache_unsubscribe(sa);
    livecache_unsubscribe(sb);
    livecache_client_free(client);
    recorder_destroy(&ra);
    recorder_destroy(&rb);
}

/* onCacheEntryAdded: a thread of the host's own waits on the lifecycle handle. */
typedef struct {
    livecache_lifecycle *lc;
    pthread_t thread;
    int started;
    char key[128];
    char *loaded;
    livecache_result loaded_rc;
    livecache_result update_after_removal;
    livecache_result entry_after_removal_rc;
    char *entry_after_removal;
    int removed;
} lifecycle_ctx;

static void mark_seen(void *user_data, const char *data_json, livecache_update *update) {
    (void)user_data;
    (void)data_json;
    CHECK_OK(livecache_update_set_patches(update, "[{\"op\":\"add\",\"path\":\"/seenByHook\",\"value\":true}]"));
}

static void *lifecycle_thread(void *arg) {
    lifecycle_ctx *c = arg;
    c->loaded_rc = livecache_lifecycle_cache_data_loaded(c->lc, &c->loaded);
    if (c->loaded_rc == LIVECACHE_RESULT_OK) {
        CHECK_OK(livecache_lifecycle_update_cached_data(c->lc, mark_seen, NULL, NULL));
        char *entry = NULL;
        CHECK_OK(livecache_lifecycle_get_cache_entry(c->lc, &entry));
        CHECK(entry && strstr(entry, "seenByHook"), "getCacheEntry shows the update: %s", entry);
        livecache_string_free(entry);
    }
    CHECK_OK(livecache_lifecycle_cache_entry_removed(c->lc));
    c->removed = 1;
    c->update_after_removal = livecache_lifecycle_update_cached_data(c->lc, mark_seen, NULL, NULL);
    c->entry_after_removal_rc = livecache_lifecycle_get_cache_entry(c->lc, &c->entry_after_removal);
    livecache_lifecycle_free(c->lc);
    return NULL;
}

static void on_added(void *user_data, const char *arg_json, livecache_lifecycle *lifecycle) {
    lifecycle_ctx *c = user_data;
    CHECK(arg_json && strcmp(arg_json, "\"room\"") == 0, "arg_json %s", arg_json ? arg_json : "NULL");
    snprintf(c->key, sizeof c->key, "%s", livecache_lifecycle_key(lifecycle));
    c->lc = lifecycle;
    /* The thread may finish its update before pthread_create returns: the test waits for this
     * store rather than reading it as soon as the update arrived. */
    int started = pthread_create(&c->thread, NULL, lifecycle_thread, c) == 0;
    __atomic_store_n(&c->started, started, __ATOMIC_SEQ_CST);
}

static void on_cache_entry_added_lifecycle(void) {
    lifecycle_ctx c;
    memset(&c, 0, sizeof c);
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getLive", query_const, (void *)"{\"n\":1}"));
    CHECK_OK(livecache_hooks_set_on_cache_entry_added(hooks, "getLive", on_added, &c));
    CHECK_RC(livecache_hooks_set_on_cache_entry_added(hooks, "getLive", NULL, NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"getLive\": {\"keepUnusedDataFor\": 0}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getLive", "\"room\"", recorder_cb, &rec, &sub));
    CHECK(recorder_wait_version(&rec, 2, WAIT), "the hook's update never arrived");
    check_replica(&rec, sub);
    char *text = recorder_replica_text(&rec);
    CHECK(text && strcmp(text, "{\"n\":1,\"seenByHook\":true}") == 0, "replica %s", text);
    free(text);
    livecache_unsubscribe(sub);
    double started_by = now_seconds() + WAIT;
    while (!__atomic_load_n(&c.started, __ATOMIC_SEQ_CST) && now_seconds() < started_by) sleep_ms(5);
    CHECK(c.started, "the hook was not called");
    if (c.started) pthread_join(c.thread, NULL);
    CHECK(c.loaded_rc == LIVECACHE_RESULT_OK && c.loaded && strcmp(c.loaded, "{\"data\":{\"n\":1},\"meta\":null}") == 0,
          "cacheDataLoaded: %d %s", (int)c.loaded_rc, c.loaded ? c.loaded : "");
    CHECK(c.removed, "cacheEntryRemoved never resolved");
    CHECK(c.update_after_removal == LIVECACHE_RESULT_CACHE_ENTRY_REMOVED, "update after removal: %s",
          livecache_result_kind(c.update_after_removal));
    /* SPEC §6: getCacheEntry() of a removed entry is RTK Query's uninitialized entry. */
    CHECK(c.entry_after_removal_rc == LIVECACHE_RESULT_OK && c.entry_after_removal &&
              strcmp(c.entry_after_removal, "{\"key\":\"getLive(\\\"room\\\")\",\"status\":\"uninitialized\"}") == 0,
          "getCacheEntry after removal: %d %s", (int)c.entry_after_removal_rc, c.entry_after_removal ? c.entry_after_removal : "");
    livecache_string_free(c.entry_after_removal);
    CHECK(strcmp(c.key, "getLive(\"room\")") == 0, "key %s", c.key);
    livecache_string_free(c.loaded);
    livecache_client_free(client);
    recorder_destroy(&rec);

    /* Removed before any data: cacheDataLoaded fails with CACHE_ENTRY_REMOVED (L2). */
    memset(&c, 0, sizeof c);
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "getLive", query_hold, NULL));
    CHECK_OK(livecache_hooks_set_on_cache_entry_added(hooks, "getLive", on_added, &c));
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"getLive\": {}}}", NULL, hooks, &client));
    livecache_hooks_free(hooks);
    recorder_init(&rec);
    CHECK_OK(livecache_subscribe(client, "getLive", "\"room\"", recorder_cb, &rec, &sub));
    double deadline = now_seconds() + WAIT;
    while (!__atomic_load_n(&c.started, __ATOMIC_SEQ_CST) && now_seconds() < deadline) sleep_ms(5);
    livecache_client_free(client);
    if (c.started) pthread_join(c.thread, NULL);
    CHECK(c.loaded_rc == LIVECACHE_RESULT_CACHE_ENTRY_REMOVED, "cacheDataLoaded: %s", livecache_result_kind(c.loaded_rc));
    CHECK(c.loaded == NULL, "out-parameter written on failure");
    CHECK(c.removed, "cacheEntryRemoved never resolved");
    CHECK(c.update_after_removal == LIVECACHE_RESULT_CACHE_ENTRY_REMOVED, "update after the client closed: %s",
          livecache_result_kind(c.update_after_removal));
    CHECK(c.entry_after_removal && strstr(c.entry_after_removal, "\"status\":\"uninitialized\""), "getCacheEntry after close: %s",
          c.entry_after_removal ? c.entry_after_removal : "");
    livecache_string_free(c.entry_after_removal);
    livecache_unsubscribe(sub);
    recorder_destroy(&rec);
    release_pending();
}

/* ---- shutdown ---- */

typedef struct {
    recorder rec;
    int after_free;
    int freed;
} shutdown_ctx;

static void shutdown_cb(void *user_data, const char *json, size_t len) {
    shutdown_ctx *c = user_data;
    if (__atomic_load_n(&c->freed, __ATOMIC_SEQ_CST)) __atomic_add_fetch(&c->after_free, 1, __ATOMIC_SEQ_CST);
    recorder_cb(&c->rec, json, len);
    sleep_ms(1);
}

static void client_freed_with_live_subscriptions(void) {
    livecache_client *client = doc_client(NULL);
    shutdown_ctx ctx[4];
    livecache_subscription *subs[4];
    const char *args[4] = {"1", "2", "\"m\"", NULL};
    for (int i = 0; i < 4; i++) {
        memset(&ctx[i], 0, sizeof ctx[i]);
        recorder_init(&ctx[i].rec);
        CHECK_OK(livecache_subscribe(client, i == 2 ? "getMessages" : i == 3 ? "getPending" : "getDoc", args[i], shutdown_cb,
                                     &ctx[i], &subs[i]));
    }
    CHECK(recorder_wait_version(&ctx[0].rec, 1, WAIT), "no snapshot");
    for (int i = 0; i < 200; i++) livecache_push_message(client, "getMessages", "\"m\"", "{\"id\":7}");
    livecache_client_free(client);
    for (int i = 0; i < 4; i++) __atomic_store_n(&ctx[i].freed, 1, __ATOMIC_SEQ_CST);
    /* Thread delivery: the queued events, `removed` last, were delivered before free returned. */
    for (int i = 0; i < 4; i++) CHECK(ctx[i].rec.removed, "subscription %d got no removed event", i);
    sleep_ms(100);
    for (int i = 0; i < 4; i++) {
        CHECK(ctx[i].after_free == 0, "subscription %d: %d callbacks after free", i, ctx[i].after_free);
        /* The handles outlive the client; unsubscribing now only releases them. */
        livecache_unsubscribe(subs[i]);
        recorder_destroy(&ctx[i].rec);
    }
    release_pending();

    /* Pull mode: nothing runs after free, queued events are dropped. */
    client = doc_client("{\"delivery\": \"poll\"}");
    shutdown_ctx p;
    memset(&p, 0, sizeof p);
    recorder_init(&p.rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getDoc", "1", shutdown_cb, &p, &sub));
    CHECK(wait_data(client, "getDoc", "1"), "no data"); /* its events are queued, unpolled */
    livecache_client_free(client);
    CHECK(recorder_count(&p.rec, NULL) == 0, "pull mode ran callbacks outside poll");
    livecache_unsubscribe(sub);
    recorder_destroy(&p.rec);
}

static void close_from_a_callback(void *user_data, const char *json, size_t len) {
    reentrant *r = user_data;
    recorder_cb(&r->rec, json, len);
    if (strstr(json, "\"type\":\"snapshot\"")) {
        CHECK_OK(livecache_client_close(r->client));
        char *stats = NULL;
        CHECK_RC(livecache_stats(r->client, &stats), LIVECACHE_RESULT_CLOSED);
    }
}

static void client_closed_from_its_own_callback(void) {
    reentrant r;
    memset(&r, 0, sizeof r);
    recorder_init(&r.rec);
    r.client = doc_client(NULL);
    CHECK_OK(livecache_subscribe(r.client, "getDoc", "1", close_from_a_callback, &r, &r.sub));
    CHECK(recorder_wait_count(&r.rec, "snapshot", 1, WAIT), "no snapshot");
    double deadline = now_seconds() + WAIT;
    char *stats = NULL;
    while (livecache_stats(r.client, &stats) == LIVECACHE_RESULT_OK && now_seconds() < deadline) {
        livecache_string_free(stats);
        stats = NULL;
        sleep_ms(5);
    }
    CHECK_RC(livecache_stats(r.client, &stats), LIVECACHE_RESULT_CLOSED);
    livecache_unsubscribe(r.sub);
    livecache_client_free(r.client);
    recorder_destroy(&r.rec);
}

static void expect_data(livecache_client *client, const char *want) {
    char *snap = NULL;
    CHECK_OK(livecache_snapshot(client, "a", NULL, &snap));
    CHECK(snap && strstr(snap, want), "want %s in %s", want, snap ? snap : "(null)");
    livecache_string_free(snap);
}

/* L9 undo(): the inverse of a host update, as a host update of its own; undoing that redoes. */
static void host_update_undo(void) {
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new("{\"endpoints\":{\"a\":{\"stream\":{\"apply\":\"append\"}}}}", &client));
    if (!client) return;
    CHECK_OK(livecache_upsert_query_data(client, "a", NULL, "[1]"));
    char *result = NULL, *undone = NULL, *redone = NULL;
    CHECK_OK(livecache_patch_query_data(client, "a", NULL, "[{\"op\":\"add\",\"path\":\"/-\",\"value\":2}]", &result));
    expect_data(client, "\"data\":[1,2]");
    CHECK_OK(livecache_undo(client, "a", NULL, result, &undone));
    expect_data(client, "\"data\":[1]");
    CHECK_OK(livecache_undo(client, "a", NULL, undone, &redone));
    expect_data(client, "\"data\":[1,2]");
    /* Bad input: each a clear error, nothing changed, nothing written. */
    char *out = NULL;
    CHECK_RC(livecache_undo(client, "a", NULL, "{\"patches\":[]}", &out), LIVECACHE_RESULT_PATCH);
    CHECK(strstr(livecache_last_error(), "inversePatches"), "%s", livecache_last_error());
    CHECK_RC(livecache_undo(client, "a", NULL, "{oops", &out), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_undo(client, "a", NULL, NULL, &out), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_RC(livecache_undo(client, "missing", NULL, result, &out), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK(out == NULL, "no output on failure");
    /* An undo that no longer fits the data (RTK's weak spot) fails all or nothing. */
    CHECK_OK(livecache_upsert_query_data(client, "a", NULL, "[]"));
    CHECK_RC(livecache_undo(client, "a", NULL, redone, &out), LIVECACHE_RESULT_PATCH);
    expect_data(client, "\"data\":[]");
    livecache_string_free(result);
    livecache_string_free(undone);
    livecache_string_free(redone);
    livecache_client_free(client);
}

/* L7 on the manual clock: the unused entry goes exactly at its deadline, with no sleep. */
static void manual_clock_removes_at_the_deadline(void) {
    const char *config = "{\"keepUnusedDataFor\":2,\"endpoints\":{\"a\":{\"stream\":{\"apply\":\"append\"}}}}";
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options(config, "{\"clock\":\"manual\"}", NULL, &client));
    if (!client) return;
    CHECK_OK(livecache_upsert_query_data(client, "a", "1", "[1]"));
    CHECK_OK(livecache_client_advance(client, 1999));
    char *snap = NULL;
    CHECK_OK(livecache_snapshot(client, "a", "1", &snap));
    CHECK(snap && strstr(snap, "\"data\":[1]"), "kept until the deadline: %s", snap ? snap : "(null)");
    livecache_string_free(snap);
    CHECK_OK(livecache_client_advance(client, 1));
    snap = NULL;
    CHECK_RC(livecache_snapshot(client, "a", "1", &snap), LIVECACHE_RESULT_NOT_FOUND);
    CHECK(snap == NULL, "no output on failure");
    CHECK_RC(livecache_client_advance(NULL, 1), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_OK(livecache_client_close(client));
    CHECK_RC(livecache_client_advance(client, 1), LIVECACHE_RESULT_CLOSED);
    livecache_client_free(client);

    livecache_client *system = NULL;
    CHECK_OK(livecache_client_new(config, &system));
    CHECK_RC(livecache_client_advance(system, 1), LIVECACHE_RESULT_INVALID_ARGUMENT);
    livecache_client_free(system);
    livecache_client *bad = NULL;
    CHECK_RC(livecache_client_new_with_options(config, "{\"clock\":\"sundial\"}", NULL, &bad), LIVECACHE_RESULT_CONFIG);
    CHECK(bad == NULL && strstr(livecache_last_error(), "clock"), "bad clock: %s", livecache_last_error());
}

static void version_and_kinds(void) {
    CHECK(strcmp(livecache_version(), "0.1.0") == 0 || strlen(livecache_version()) > 0, "version");
    const char *names[] = {"Ok", "NullParameter", "InvalidInput", "InvalidInput", "ConfigError", "Closed", "UnknownEndpoint",
                           "NotFound", "NotLoaded", "PatchError", "InvalidArgument", "CacheEntryRemoved", "Panic", "NotConnected",
                           "WrongEndpointKind", "MutationError"};
    for (int i = 0; i <= (int)LIVECACHE_RESULT_MUTATION; i++)
        CHECK(strcmp(livecache_result_kind((livecache_result)i), names[i]) == 0, "kind %d: %s", i,
              livecache_result_kind((livecache_result)i));
}

/* W1: a mutation_fn hook is the endpoint's write: livecache_mutate's callback gets what the hook
 * fulfilled, or LIVECACHE_RESULT_MUTATION with what it rejected with; a mutation_fn beside a
 * query is a CONFIG error at client creation. */
typedef struct {
    pthread_mutex_t lock;
    int calls;
    livecache_result result;
    char json[256];
} mutate_seen;

static livecache_request *held_write;

static void mutation_write(void *user_data, const char *arg_json, livecache_request *request) {
    (void)user_data;
    if (arg_json && strstr(arg_json, "\"hold\":true")) {
        held_write = request; /* answered after the client is gone */
        return;
    }
    if (arg_json && strstr(arg_json, "\"ok\":true"))
        livecache_request_fulfill(request, "{\"written\":true}");
    else
        livecache_request_reject(request, "{\"status\":409,\"data\":\"refused by the hook\"}");
}

static void on_mutated(void *user_data, livecache_result result, const char *json, size_t len) {
    mutate_seen *s = user_data;
    pthread_mutex_lock(&s->lock);
    s->calls++;
    s->result = result;
    snprintf(s->json, sizeof s->json, "%.*s", (int)len, json);
    pthread_mutex_unlock(&s->lock);
}

static int wait_mutated(mutate_seen *s, int calls) {
    double deadline = now_seconds() + WAIT;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int n = s->calls;
        pthread_mutex_unlock(&s->lock);
        if (n >= calls) return 1;
        if (now_seconds() > deadline) return 0;
        sleep_ms(2);
    }
}

static void mutation_fn_hook(void) {
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_mutation_fn(hooks, "write", mutation_write, NULL));
    CHECK_RC(livecache_hooks_set_mutation_fn(hooks, "write", NULL, NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options("{\"endpoints\": {\"write\": {}}}", NULL, hooks, &client));
    mutate_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    CHECK_OK(livecache_mutate(client, "write", "{\"ok\":true}", NULL, on_mutated, &s));
    CHECK(wait_mutated(&s, 1), "no completion");
    CHECK(s.result == LIVECACHE_RESULT_OK && strcmp(s.json, "{\"written\":true}") == 0, "%d %s", (int)s.result, s.json);
    CHECK_OK(livecache_mutate(client, "write", "{\"ok\":false}", NULL, on_mutated, &s));
    CHECK(wait_mutated(&s, 2), "no completion");
    CHECK(s.result == LIVECACHE_RESULT_MUTATION && strstr(s.json, "refused by the hook") && strstr(s.json, "409"), "%d %s", (int)s.result, s.json);
    livecache_subscription *sub = NULL;
    CHECK_RC(livecache_subscribe(client, "write", NULL, recorder_cb, NULL, &sub), LIVECACHE_RESULT_WRONG_ENDPOINT_KIND);
    /* A write still out when the client is freed: the callback runs with CLOSED before
     * livecache_client_free returns. */
    CHECK_OK(livecache_mutate(client, "write", "{\"hold\":true}", NULL, on_mutated, &s));
    double deadline = now_seconds() + WAIT;
    while (held_write == NULL && now_seconds() < deadline) sleep_ms(2);
    CHECK(held_write != NULL, "the held write never reached the hook");
    livecache_client_free(client);
    pthread_mutex_lock(&s.lock);
    CHECK(s.calls == 3 && s.result == LIVECACHE_RESULT_CLOSED, "after free: %d calls, result %d", s.calls, (int)s.result);
    pthread_mutex_unlock(&s.lock);
    if (held_write) livecache_request_reject(held_write, NULL);
    held_write = NULL;
    livecache_client *bad = NULL;
    CHECK_RC(livecache_client_new_with_options("{\"endpoints\": {\"write\": {\"query\": \"x\"}}}", NULL, hooks, &bad), LIVECACHE_RESULT_CONFIG);
    CHECK(strstr(livecache_last_error(), "mutationFn") != NULL, "message: %s", livecache_last_error());
    livecache_hooks_free(hooks);
}

/* W2 tags hooks: providesTags answers per arg ("bad" an unknown type, "fails" a failure);
 * invalidatesTags sees the outcome and answers Doc:1 unless the arg asks it to fail. */
static int provides_calls;
static char invalidates_seen[256];

static void provides_doc(void *user_data, const char *data_json, const char *arg_json, livecache_update *tags) {
    (void)user_data;
    (void)data_json;
    provides_calls++;
    if (arg_json && strcmp(arg_json, "\"bad\"") == 0) {
        CHECK_OK(livecache_update_set_data(tags, "[\"Doc\", \"Nope\"]"));
    } else if (arg_json && strcmp(arg_json, "\"fails\"") == 0) {
        livecache_update_fail(tags, "no tags today");
    } else {
        char out[128];
        snprintf(out, sizeof out, "[{\"type\":\"Doc\",\"id\":%s}]", arg_json ? arg_json : "null");
        CHECK_OK(livecache_update_set_data(tags, out));
    }
}

static void invalidates_doc(void *user_data, const char *result_json, const char *error_json, const char *arg_json, livecache_update *tags) {
    (void)user_data;
    snprintf(invalidates_seen, sizeof invalidates_seen, "result=%s error=%s", result_json ? result_json : "NULL", error_json ? error_json : "NULL");
    if (arg_json && strstr(arg_json, "\"failtags\":true"))
        livecache_update_fail(tags, "cannot tell");
    else
        CHECK_OK(livecache_update_set_data(tags, "[{\"type\":\"Doc\",\"id\":1}]"));
}

static double stat_of(livecache_client *client, const char *name) {
    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    jvalue *st = take_json(stats);
    double n = json_get(st, name)->num;
    json_free(st);
    return n;
}

static void tags_hooks(void) {
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_query_fn(hooks, "doc", query_const, (void *)"[1,2]"));
    CHECK_OK(livecache_hooks_set_provides_tags(hooks, "doc", provides_doc, NULL));
    CHECK_RC(livecache_hooks_set_provides_tags(hooks, "doc", NULL, NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_OK(livecache_hooks_set_mutation_fn(hooks, "write", mutation_write, NULL));
    CHECK_OK(livecache_hooks_set_invalidates_tags(hooks, "write", invalidates_doc, NULL));
    CHECK_RC(livecache_hooks_set_invalidates_tags(hooks, "write", NULL, NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    const char *config = "{\"tagTypes\": [\"Doc\"], \"endpoints\": {\"doc\": {}, \"write\": {}}}";
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options(config, NULL, hooks, &client));
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "doc", "1", recorder_cb, &rec, &sub));
    CHECK(recorder_wait_version(&rec, 1, WAIT), "no data");
    CHECK(provides_calls == 1, "providesTags calls: %d", provides_calls);
    /* A write: the hook sees its result, and its Doc:1 matches the hook-provided tag. */
    mutate_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    CHECK_OK(livecache_mutate(client, "write", "{\"ok\":true}", NULL, on_mutated, &s));
    CHECK(wait_mutated(&s, 1), "no completion");
    CHECK(s.result == LIVECACHE_RESULT_OK, "%d %s", (int)s.result, s.json);
    CHECK(strcmp(invalidates_seen, "result={\"written\":true} error=NULL") == 0, "%s", invalidates_seen);
    CHECK(stat_of(client, "invalidations") == 1, "invalidations");
    CHECK(provides_calls == 2, "the refetch ran providesTags again: %d", provides_calls);
    /* A refused write: the hook sees the error value, no result. */
    CHECK_OK(livecache_mutate(client, "write", "{\"ok\":false}", NULL, on_mutated, &s));
    CHECK(wait_mutated(&s, 2), "no completion");
    CHECK(strstr(invalidates_seen, "result=NULL error={") && strstr(invalidates_seen, "409"), "%s", invalidates_seen);
    CHECK(stat_of(client, "invalidations") == 2, "invalidations on failure too");
    /* A hook that fails: the mutation fails with the write's answer, nothing is invalidated. */
    CHECK_OK(livecache_mutate(client, "write", "{\"ok\":true,\"failtags\":true}", NULL, on_mutated, &s));
    CHECK(wait_mutated(&s, 3), "no completion");
    CHECK(s.result == LIVECACHE_RESULT_MUTATION && strstr(s.json, "invalidatesTags failed: cannot tell") && strstr(s.json, "\"written\":true"),
          "%d %s", (int)s.result, s.json);
    CHECK(stat_of(client, "invalidations") == 2, "nothing invalidated");
    /* W3: a layer as the patch a host recipe made, {endpoint, arg, patch}: shown at once, taken
     * off by the refetch the write's invalidation started; a patch that does not apply refuses
     * the call and nothing is sent. */
    const char *layer = "{\"optimistic\": [{\"endpoint\": \"doc\", \"arg\": 1, \"patch\": [{\"op\": \"replace\", \"path\": \"/0\", \"value\": 9}]}]}";
    CHECK_OK(livecache_mutate(client, "write", "{\"ok\":true,\"hold\":true}", layer, on_mutated, &s));
    double deadline = now_seconds() + WAIT;
    while (held_write == NULL && now_seconds() < deadline) sleep_ms(2);
    CHECK(held_write != NULL, "the held write never reached the hook");
    jvalue *shown = snapshot_of(client, "doc", "1");
    char *shown_data = json_dump(json_get(shown, "data"));
    CHECK(strcmp(shown_data, "[9,2]") == 0 && json_get(shown, "optimistic")->num == 1, "the layer shows: %s", shown_data);
    free(shown_data);
    json_free(shown);
    livecache_request_fulfill(held_write, "{\"written\":true}");
    held_write = NULL;
    CHECK(wait_mutated(&s, 4), "no completion");
    CHECK(s.result == LIVECACHE_RESULT_OK, "%d %s", (int)s.result, s.json);
    shown = snapshot_of(client, "doc", "1");
    shown_data = json_dump(json_get(shown, "data"));
    CHECK(strcmp(shown_data, "[1,2]") == 0 && json_get(shown, "optimistic") == NULL, "confirmed by the refetch: %s", shown_data);
    free(shown_data);
    json_free(shown);
    const char *bad_layer = "{\"optimistic\": [{\"endpoint\": \"doc\", \"arg\": 1, \"patch\": [{\"op\": \"remove\", \"path\": \"/7\"}]}]}";
    CHECK_RC(livecache_mutate(client, "write", "{\"ok\":true}", bad_layer, on_mutated, &s), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(livecache_last_error(), "does not apply") != NULL, "message: %s", livecache_last_error());
    /* providesTags answering an unknown type after a fetch: an error event, the data kept. */
    recorder bad;
    recorder_init(&bad);
    livecache_subscription *bad_sub = NULL;
    CHECK_OK(livecache_subscribe(client, "doc", "\"bad\"", recorder_cb, &bad, &bad_sub));
    CHECK(recorder_wait_count(&bad, "error", 1, WAIT), "no error event");
    pthread_mutex_lock(&bad.lock);
    for (size_t i = 0; i < bad.events->n; i++) {
        jvalue *ev = bad.events->items[i];
        if (strcmp(json_string(json_get(ev, "type")), "error") != 0) continue;
        CHECK(strcmp(json_string(json_get(ev, "reason")), "hook") == 0, "reason");
        CHECK(strstr(json_string(json_get(ev, "message")), "\"Nope\" is not in tagTypes") != NULL, "%s", json_string(json_get(ev, "message")));
    }
    pthread_mutex_unlock(&bad.lock);
    CHECK(recorder_wait_version(&bad, 1, WAIT), "the data is kept");
    /* upsertQueryData with a failing hook: PATCH, nothing changed. */
    CHECK_RC(livecache_upsert_query_data(client, "doc", "\"fails\"", "[3]"), LIVECACHE_RESULT_PATCH);
    CHECK(strstr(livecache_last_error(), "providesTags failed: no tags today") != NULL, "message: %s", livecache_last_error());
    CHECK_RC(livecache_upsert_query_data(client, "doc", "\"bad\"", "[3]"), LIVECACHE_RESULT_PATCH);
    jvalue *snap = snapshot_of(client, "doc", "\"bad\"");
    char *data = json_dump(json_get(snap, "data"));
    CHECK(strcmp(data, "[1,2]") == 0, "not upserted: %s", data);
    free(data);
    json_free(snap);
    livecache_unsubscribe(bad_sub);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&bad);
    recorder_destroy(&rec);
    /* A tags hook beside the config key of its name is a ConfigError naming the hook. */
    livecache_client *both = NULL;
    const char *tagged = "{\"tagTypes\": [\"Doc\"], \"endpoints\": {\"doc\": {\"providesTags\": [\"Doc\"]}, \"write\": {}}}";
    CHECK_RC(livecache_client_new_with_options(tagged, NULL, hooks, &both), LIVECACHE_RESULT_CONFIG);
    CHECK(strstr(livecache_last_error(), "hooks.doc.providesTags") != NULL, "message: %s", livecache_last_error());
    livecache_hooks_free(hooks);
}

int main(void) {
    run_case("subscribe_snapshot_patch_unsubscribe", subscribe_snapshot_patch_unsubscribe);
    run_case("mutation_fn_hook", mutation_fn_hook);
    run_case("tags_hooks", tags_hooks);
    run_case("push_messages_through_the_pipeline", push_messages_through_the_pipeline);
    run_case("push_messages_is_a_burst", push_messages_is_a_burst);
    run_case("upsert_refetch_and_update_query_data", upsert_refetch_and_update_query_data);
    run_case("cache_keys_follow_k1", cache_keys_follow_k1);
    run_case("bad_config_gives_config_errors", bad_config_gives_config_errors);
    run_case("bad_json_arguments", bad_json_arguments);
    run_case("unknown_endpoint", unknown_endpoint);
    run_case("null_arguments", null_arguments);
    run_case("non_utf8_strings", non_utf8_strings);
    run_case("not_found_not_loaded_patch_and_closed", not_found_not_loaded_patch_and_closed);
    run_case("last_error_is_per_thread", last_error_is_per_thread);
    run_case("callback_unsubscribes_itself", callback_unsubscribes_itself);
    run_case("callback_subscribes_another_key", callback_subscribes_another_key);
    run_case("unsubscribe_waits_for_a_running_callback", unsubscribe_waits_for_a_running_callback);
    run_case("pull_mode_with_the_file_descriptor", pull_mode_with_the_file_descriptor);
    run_case("pull_mode_blocking_poll_wakes_up", pull_mode_blocking_poll_wakes_up);
    run_case("query_fn_answered_from_another_thread", query_fn_answered_from_another_thread);
    run_case("query_fn_rejects", query_fn_rejects);
    run_case("on_message_updater_returns_patches", on_message_updater_returns_patches);
    run_case("on_messages_updater_takes_a_burst_in_one_call", on_messages_updater_takes_a_burst_in_one_call);
    run_case("transform_response_hook", transform_response_hook);
    run_case("on_cache_entry_added_lifecycle", on_cache_entry_added_lifecycle);
    run_case("client_freed_with_live_subscriptions", client_freed_with_live_subscriptions);
    run_case("client_closed_from_its_own_callback", client_closed_from_its_own_callback);
    run_case("host_update_undo", host_update_undo);
    run_case("manual_clock_removes_at_the_deadline", manual_clock_removes_at_the_deadline);
    run_case("version_and_kinds", version_and_kinds);
    return finish();
}
