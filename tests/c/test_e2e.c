/* End to end through the C API against the real chat test server (tests/chat_server.py) on
 * 127.0.0.1: the HTTP fetch and the WebSocket stream of the seed's chat (SPEC §2), stream state
 * events and reconnection (L8), bad frames (E3), shared sockets (K2), close handshakes on
 * removal and on livecache_client_free (L7, §8), and pull mode.
 *
 * usage: test_e2e PYTHON tests/chat_server.py */
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "support.h"

#define WAIT 10.0

static chat_server server;

static char *config(double keep_unused) {
    char *text = malloc(1024);
    snprintf(text, 1024,
             "{\"baseUrl\": \"http://127.0.0.1:%d/\", \"keepUnusedDataFor\": %g, \"endpoints\": {\"getMessages\": {"
             "\"query\": \"messages/{arg}\","
             "\"stream\": {\"url\": \"ws://127.0.0.1:%d/\", \"filter\": {\"channel\": \"{arg}\"},"
             "\"schema\": {\"type\": \"object\", \"required\": [\"id\", \"channel\", \"text\"]},"
             "\"apply\": {\"append\": {\"dedupeBy\": \"id\"}},"
             "\"reconnect\": {\"initialDelayMs\": 50, \"maxDelayMs\": 500}}}}}",
             server.port, keep_unused, server.port);
    return text;
}

static livecache_client *chat_client(double keep_unused, const char *options) {
    char *text = config(keep_unused);
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options(text, options, NULL, &client));
    free(text);
    return client;
}

static jvalue *admin(const char *method, const char *path, const char *body) {
    char *text = http_request(server.admin_port, method, path, body);
    CHECK(text != NULL, "admin %s %s failed", method, path);
    if (!text) return NULL;
    jvalue *v = json_parse_or_die(text);
    free(text);
    return v;
}

static double server_stat(const char *name) {
    jvalue *st = admin("GET", "/stats", NULL);
    double v = st && json_get(st, name) ? json_get(st, name)->num : -1;
    json_free(st);
    return v;
}

static int wait_server_stat(const char *name, double at_least) {
    double deadline = now_seconds() + WAIT;
    while (server_stat(name) < at_least) {
        if (now_seconds() > deadline) return 0;
        sleep_ms(10);
    }
    return 1;
}

static void post(const char *channel, const char *text) {
    char body[512];
    snprintf(body, sizeof body, "{\"channel\":\"%s\",\"userName\":\"c-test\",\"text\":\"%s\"}", channel, text);
    json_free(admin("POST", "/post", body));
}

/* Waits for a `stream` event with this state, after `skip` earlier ones of that state. */
static int wait_stream_state(recorder *rec, const char *state, int count, double seconds) {
    double deadline = now_seconds() + seconds;
    for (;;) {
        int seen = 0;
        pthread_mutex_lock(&rec->lock);
        for (size_t i = 0; i < rec->events->n; i++) {
            const jvalue *e = rec->events->items[i];
            const char *t = json_string(json_get(e, "type")), *s = json_string(json_get(e, "state"));
            if (t && s && strcmp(t, "stream") == 0 && strcmp(s, state) == 0) seen++;
        }
        pthread_mutex_unlock(&rec->lock);
        if (seen >= count) return 1;
        if (now_seconds() > deadline) return 0;
        sleep_ms(5);
    }
}

static int replica_has_text(recorder *rec, const char *text) {
    char *data = recorder_replica_text(rec);
    int found = data && strstr(data, text) != NULL;
    free(data);
    return found;
}

static int wait_replica_text(recorder *rec, const char *text) {
    double deadline = now_seconds() + WAIT;
    while (!replica_has_text(rec, text)) {
        if (now_seconds() > deadline) return 0;
        sleep_ms(5);
    }
    return 1;
}

static void check_replica(recorder *rec, livecache_subscription *sub) {
    char *snap = NULL, why[300];
    CHECK_OK(livecache_subscription_snapshot(sub, &snap));
    if (!snap) return;
    CHECK(recorder_matches(rec, snap, why, sizeof why), "replica: %s", why);
    livecache_string_free(snap);
}

static void reset(void) { json_free(admin("POST", "/reset", NULL)); }

static double client_stat(livecache_client *client, const char *name) {
    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    jvalue *st = take_json(stats);
    double v = st && json_get(st, name) ? json_get(st, name)->num : -1;
    json_free(st);
    return v;
}

/* Waits until every fetch started so far has ended and its event reached `rec`: a snapshot for
 * each one applied (SPEC §5: after every refetch), none for a stale or failed one. An open stream
 * may have started a resync (L8) whose answer is still on the way; comparing the replica with
 * snapshot() before it landed would race with it. In pull mode (`poll`) this runs the callbacks. */
static int wait_fetches_settled(livecache_client *client, recorder *rec, int poll) {
    double deadline = now_seconds() + WAIT;
    for (;;) {
        double ended = recorder_count(rec, "snapshot") + client_stat(client, "staleResponses") + client_stat(client, "fetchErrors");
        if (ended >= client_stat(client, "fetches")) return 1;
        if (now_seconds() > deadline) return 0;
        if (poll)
            CHECK_OK(livecache_client_poll(client, 5, NULL));
        else
            sleep_ms(5);
    }
}

static void chat_fetch_then_stream(void) {
    reset();
    livecache_client *client = chat_client(60, NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(recorder_wait_version(&rec, 1, WAIT), "no data fetched");
    CHECK(wait_stream_state(&rec, "open", 1, WAIT), "the stream never opened");
    CHECK(replica_has_text(&rec, "Welcome to #redux"), "seed messages");
    post("general", "not for redux");
    post("redux", "from C");
    CHECK(wait_replica_text(&rec, "from C"), "the posted message never arrived");
    CHECK(wait_fetches_settled(client, &rec, 0), "a fetch never ended");
    char *snap = NULL;
    CHECK_OK(livecache_snapshot(client, "getMessages", "\"redux\"", &snap));
    jvalue *s = take_json(snap);
    CHECK(json_get(s, "data") && json_get(s, "data")->n == 3, "redux has 3 messages");
    CHECK(strcmp(json_string(json_get(json_get(s, "stream"), "state")), "open") == 0, "stream state in the snapshot");
    json_free(s);
    check_replica(&rec, sub);
    CHECK(!replica_has_text(&rec, "not for redux"), "the filter let another channel through");
    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    jvalue *st = take_json(stats);
    CHECK(json_get(st, "messagesFiltered")->num >= 1, "filtered counter");
    /* One fetch, plus one resync when the fetch finished before the socket opened (L8). */
    CHECK(server_stat("httpRequests") == json_get(st, "fetches")->num && json_get(st, "fetches")->num <= 2,
          "HTTP fetches: server %g, client %g", server_stat("httpRequests"), json_get(st, "fetches")->num);
    json_free(st);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

static void subscribers_of_one_key_share_one_socket(void) {
    reset();
    livecache_client *client = chat_client(60, NULL);
    recorder a, b;
    recorder_init(&a);
    recorder_init(&b);
    livecache_subscription *sa = NULL, *sb = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &a, &sa));
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &b, &sb));
    CHECK(wait_stream_state(&a, "open", 1, WAIT) && wait_stream_state(&b, "open", 1, WAIT), "stream not open");
    post("redux", "shared");
    CHECK(wait_replica_text(&a, "shared") && wait_replica_text(&b, "shared"), "message missing");
    CHECK(server_stat("connectionsOpened") == 1, "K2: %g sockets for one key", server_stat("connectionsOpened"));
    CHECK(server_stat("httpRequests") <= 2, "K2: %g fetches for one key", server_stat("httpRequests"));
    livecache_unsubscribe(sa);
    livecache_unsubscribe(sb);
    livecache_client_free(client);
    recorder_destroy(&a);
    recorder_destroy(&b);
}

static void dropped_stream_reconnects_and_resyncs(void) {
    reset();
    livecache_client *client = chat_client(60, NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(wait_stream_state(&rec, "open", 1, WAIT), "the stream never opened");
    jvalue *dropped = admin("POST", "/drop", NULL);
    CHECK(dropped && json_get(dropped, "dropped")->num == 1, "one socket dropped");
    json_free(dropped);
    /* Posted while the client may be away: the resync refetch (L8) or the stream brings it. */
    post("redux", "while away");
    CHECK(wait_stream_state(&rec, "reconnecting", 1, WAIT), "no reconnecting state");
    CHECK(wait_stream_state(&rec, "open", 2, WAIT), "did not reopen");
    CHECK(wait_replica_text(&rec, "while away"), "the message posted during the drop is lost");
    post("redux", "after reconnect");
    CHECK(wait_replica_text(&rec, "after reconnect"), "the reopened stream does not apply");
    CHECK(wait_fetches_settled(client, &rec, 0), "the resync never ended");
    check_replica(&rec, sub);
    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    jvalue *st = take_json(stats);
    CHECK(json_get(st, "reconnects")->num >= 1, "reconnects counter");
    json_free(st);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

static void bad_frames_are_error_events(void) {
    reset();
    livecache_client *client = chat_client(60, NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(wait_stream_state(&rec, "open", 1, WAIT), "the stream never opened");
    json_free(admin("POST", "/raw", "{\"text\":\"{not json\"}"));
    json_free(admin("POST", "/raw", "{\"text\":\"{\\\"channel\\\":\\\"redux\\\"}\"}"));
    CHECK(recorder_wait_count(&rec, "error", 2, WAIT), "no error events");
    post("redux", "still flowing");
    CHECK(wait_replica_text(&rec, "still flowing"), "the stream stopped after bad input");
    pthread_mutex_lock(&rec.lock);
    const char *reasons[2] = {NULL, NULL};
    for (size_t i = 0, k = 0; i < rec.events->n && k < 2; i++)
        if (strcmp(json_string(json_get(rec.events->items[i], "type")), "error") == 0)
            reasons[k++] = json_string(json_get(rec.events->items[i], "reason"));
    CHECK(reasons[0] && strcmp(reasons[0], "invalid_json") == 0, "first reason %s", reasons[0]);
    CHECK(reasons[1] && strcmp(reasons[1], "schema") == 0, "second reason %s", reasons[1]);
    pthread_mutex_unlock(&rec.lock);
    CHECK(wait_fetches_settled(client, &rec, 0), "a fetch never ended");
    check_replica(&rec, sub);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

static void client_free_with_open_sockets_closes_them(void) {
    reset();
    livecache_client *client = chat_client(60, NULL);
    recorder a, b;
    recorder_init(&a);
    recorder_init(&b);
    livecache_subscription *sa = NULL, *sb = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &a, &sa));
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"general\"", recorder_cb, &b, &sb));
    CHECK(wait_stream_state(&a, "open", 1, WAIT) && wait_stream_state(&b, "open", 1, WAIT), "streams not open");
    CHECK(wait_server_stat("connectionsOpen", 2) && server_stat("connectionsOpen") == 2, "two sockets open");
    livecache_client_free(client);
    CHECK(a.removed && b.removed, "removed events delivered before free returned");
    CHECK(wait_server_stat("clientInitiatedCloses", 2), "close handshakes: %g (aborted %g)", server_stat("clientInitiatedCloses"),
          server_stat("abortedConnections"));
    CHECK(server_stat("abortedConnections") == 0, "a socket was dropped without a close frame");
    CHECK(server_stat("connectionsOpen") == 0, "sockets left open");
    livecache_unsubscribe(sa);
    livecache_unsubscribe(sb);
    recorder_destroy(&a);
    recorder_destroy(&b);
}

static void unused_entry_removal_closes_its_socket(void) {
    reset();
    livecache_client *client = chat_client(0.2, NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(wait_stream_state(&rec, "open", 1, WAIT), "the stream never opened");
    livecache_unsubscribe(sub);
    CHECK(wait_server_stat("clientInitiatedCloses", 1), "no close handshake after keepUnusedDataFor");
    char *snap = NULL;
    CHECK_RC(livecache_snapshot(client, "getMessages", "\"redux\"", &snap), LIVECACHE_RESULT_NOT_FOUND);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

/* T2/T1: livecache_send writes one frame on the open stream (the server records it);
 * livecache_reconnect closes with a handshake and opens a new socket; with no entry or no open
 * connection the codes say so and nothing is queued. */
static int wait_frame(const char *needle) {
    double deadline = now_seconds() + WAIT;
    for (;;) {
        char *text = http_request(server.admin_port, "GET", "/seen", NULL);
        int found = text && strstr(text, needle) != NULL;
        free(text);
        if (found) return 1;
        if (now_seconds() > deadline) return 0;
        sleep_ms(10);
    }
}

static void send_and_reconnect(void) {
    reset();
    livecache_client *client = chat_client(60, NULL);
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(wait_stream_state(&rec, "open", 1, WAIT), "the stream never opened");
    CHECK_OK(livecache_send(client, "getMessages", "\"redux\"", "{\"type\":\"typing\",\"from\":\"c-test\"}"));
    CHECK(wait_frame("c-test"), "the server never got the sent frame");
    CHECK_RC(livecache_send(client, "getMessages", "\"nobody\"", "{}"), LIVECACHE_RESULT_NOT_FOUND);
    CHECK_RC(livecache_send(client, "getMessages", "\"redux\"", "{bad"), LIVECACHE_RESULT_INVALID_JSON);
    CHECK_RC(livecache_send(client, "getMessages", "\"redux\"", NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_OK(livecache_reconnect(client, "getMessages", "\"redux\""));
    CHECK(wait_stream_state(&rec, "open", 2, WAIT), "no second open after reconnect");
    CHECK(wait_server_stat("clientInitiatedCloses", 1), "the reconnect closed without a handshake");
    CHECK(server_stat("connectionsOpened") == 2, "connections: %g", server_stat("connectionsOpened"));
    CHECK_RC(livecache_reconnect(client, "getMessages", "\"nobody\""), LIVECACHE_RESULT_NOT_FOUND);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);

    /* Nothing listens on port 9: the stream never opens. */
    const char *closed = "{\"endpoints\": {\"e\": {\"stream\": {\"url\": \"ws://127.0.0.1:9/\", \"apply\": \"replace\"}}}}";
    CHECK_OK(livecache_client_new(closed, &client));
    recorder_init(&rec);
    CHECK_OK(livecache_subscribe(client, "e", NULL, recorder_cb, &rec, &sub));
    CHECK_RC(livecache_send(client, "e", NULL, "{}"), LIVECACHE_RESULT_NOT_CONNECTED);
    CHECK(strstr(livecache_last_error(), "not connected") != NULL, "message: %s", livecache_last_error());
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

/* T1: prepareHeaders answers the headers of every fetch and every connect; a rejection fails
 * that fetch (status rejected) and that connect attempt. */
/* The hook runs on the client's threads; the count is atomic for that. */
static atomic_int prepare_calls = 0;

static void prepare_token(void *user_data, const char *headers_json, const char *context_json,
                          livecache_request *request) {
    (void)headers_json;
    int *fail = user_data;
    int call = atomic_fetch_add(&prepare_calls, 1) + 1;
    if (*fail) {
        livecache_request_reject(request, strstr(context_json, "\"stream\"") ? "{\"error\":\"no token for the stream\"}"
                                                                               : "{\"error\":\"no token for the query\"}");
        return;
    }
    char answer[128];
    snprintf(answer, sizeof answer, "{\"Authorization\": \"Bearer c-token-%d\"}", call);
    livecache_request_fulfill(request, answer);
}

static void prepare_headers_hook(void) {
    reset();
    int fail = 0;
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    CHECK_OK(livecache_hooks_set_prepare_headers(hooks, "getMessages", prepare_token, &fail));
    CHECK_RC(livecache_hooks_set_prepare_headers(hooks, "getMessages", NULL, NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    char *text = config(60);
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options(text, NULL, hooks, &client));
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(wait_stream_state(&rec, "open", 1, WAIT), "the stream never opened");
    /* The stream can open before the fetch reached the server (valgrind makes that likely):
     * the fetch is known to have been served once its snapshot arrived. */
    CHECK(wait_fetches_settled(client, &rec, 0) && recorder_count(&rec, "snapshot") >= 1, "the fetch never loaded");
    jvalue *seen = admin("GET", "/seen", NULL);
    jvalue *handshakes = json_get(seen, "handshakes");
    jvalue *requests = json_get(seen, "requests");
    CHECK(handshakes && handshakes->n >= 1 && strstr(json_string(json_get(handshakes->items[handshakes->n - 1], "authorization")), "c-token"),
          "handshake without the hook's token");
    CHECK(requests && requests->n >= 1 && strstr(json_string(json_get(requests->items[requests->n - 1], "authorization")), "c-token"),
          "fetch without the hook's token");
    json_free(seen);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);

    fail = 1;
    CHECK_OK(livecache_client_new_with_options(text, NULL, hooks, &client));
    recorder_init(&rec);
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"general\"", recorder_cb, &rec, &sub));
    double deadline = now_seconds() + WAIT;
    int rejected = 0, stream_failed = 0;
    while (!(rejected && stream_failed) && now_seconds() < deadline) {
        char *snap = NULL;
        CHECK_OK(livecache_snapshot(client, "getMessages", "\"general\"", &snap));
        rejected = strstr(snap, "no token for the query") != NULL && strstr(snap, "\"rejected\"") != NULL;
        stream_failed = strstr(snap, "no token for the stream") != NULL;
        livecache_string_free(snap);
        if (!(rejected && stream_failed)) sleep_ms(10);
    }
    CHECK(rejected, "a rejecting prepareHeaders did not reject the fetch");
    CHECK(stream_failed, "a rejecting prepareHeaders did not fail the connect");
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
    livecache_hooks_free(hooks);
    free(text);
}

static void pull_mode_against_the_server(void) {
    reset();
    livecache_client *client = chat_client(60, "{\"delivery\": \"poll\"}");
    int fd = -1;
    CHECK_OK(livecache_client_fd(client, &fd));
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    double deadline = now_seconds() + WAIT;
    int posted = 0;
    while (!replica_has_text(&rec, "pulled") && now_seconds() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) == 1) CHECK_OK(livecache_client_poll(client, 0, NULL));
        if (!posted && wait_stream_state(&rec, "open", 1, 0)) {
            post("redux", "pulled");
            posted = 1;
        }
    }
    CHECK(replica_has_text(&rec, "pulled"), "message not delivered through poll");
    CHECK(wait_fetches_settled(client, &rec, 1), "a fetch never ended");
    check_replica(&rec, sub);
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

/* W1/W2/W4: livecache_mutate posts a message (the admin port's POST /post), the callback runs
 * once with the response after the invalidated channel refetched (the server counts it), a
 * refused post is LIVECACHE_RESULT_MUTATION with the server's {status, data}, and bad calls
 * return their code at once without calling back. */
typedef struct {
    pthread_mutex_t lock;
    int calls;
    livecache_result result;
    char json[512];
    int snapshot_has_text; /* what livecache_snapshot showed from inside the callback (W4) */
    livecache_client *client;
} mutation_done;

static void on_mutation_done(void *user_data, livecache_result result, const char *result_json, size_t len) {
    mutation_done *d = user_data;
    int has = 0;
    if (result == LIVECACHE_RESULT_OK) {
        char *snap = NULL;
        if (livecache_snapshot(d->client, "getMessages", "\"redux\"", &snap) == LIVECACHE_RESULT_OK) {
            has = strstr(snap, "posted from C") != NULL;
            livecache_string_free(snap);
        }
    }
    pthread_mutex_lock(&d->lock);
    d->calls++;
    d->result = result;
    d->snapshot_has_text = has;
    snprintf(d->json, sizeof d->json, "%.*s", (int)len, result_json);
    pthread_mutex_unlock(&d->lock);
}

static int wait_mutation(mutation_done *d, int calls) {
    double deadline = now_seconds() + WAIT;
    pthread_mutex_lock(&d->lock);
    while (d->calls < calls && now_seconds() < deadline) {
        pthread_mutex_unlock(&d->lock);
        sleep_ms(5);
        pthread_mutex_lock(&d->lock);
    }
    int reached = d->calls >= calls;
    pthread_mutex_unlock(&d->lock);
    return reached;
}

static void mutate_posts_and_invalidates(void) {
    reset();
    char text[2048];
    snprintf(text, sizeof text,
             "{\"baseUrl\": \"http://127.0.0.1:%d/\", \"tagTypes\": [\"Messages\"], \"endpoints\": {"
             "\"getMessages\": {\"query\": \"messages/{arg}\", \"providesTags\": [{\"type\": \"Messages\", \"id\": \"{arg}\"}],"
             "  \"stream\": {\"url\": \"ws://127.0.0.1:%d/\", \"filter\": {\"channel\": \"{arg}\"}, \"apply\": {\"append\": {\"dedupeBy\": \"id\"}}}},"
             "\"sendMessage\": {\"mutation\": {\"url\": \"http://127.0.0.1:%d/post\", \"params\": {\"fail\": \"{arg.fail}\"},"
             "  \"body\": {\"channel\": \"{arg.channel}\", \"userName\": \"c\", \"text\": \"{arg.text}\"}},"
             "  \"invalidatesTags\": [{\"type\": \"Messages\", \"id\": \"{arg.channel}\"}]}}}",
             server.port, server.port, server.admin_port);
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new(text, &client));
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &rec, &sub));
    CHECK(wait_stream_state(&rec, "open", 1, WAIT), "the stream never opened");
    CHECK(wait_fetches_settled(client, &rec, 0), "the first fetches never settled");
    double fetched = server_stat("httpRequests");

    mutation_done d = {.lock = PTHREAD_MUTEX_INITIALIZER, .client = client};
    CHECK_OK(livecache_mutate(client, "sendMessage", "{\"channel\": \"redux\", \"text\": \"posted from C\", \"fail\": null}", NULL, on_mutation_done, &d));
    CHECK(wait_mutation(&d, 1), "the mutation never completed");
    CHECK(d.result == LIVECACHE_RESULT_OK, "result %d: %s", (int)d.result, d.json);
    CHECK(strstr(d.json, "\"posted from C\"") != NULL, "the response data: %s", d.json);
    CHECK(d.snapshot_has_text, "W4: the snapshot inside the callback lacks the posted message");
    CHECK(server_stat("httpRequests") == fetched + 1, "the invalidation refetched %g times", server_stat("httpRequests") - fetched);

    /* W3: an optimistic layer shows in the snapshot as soon as livecache_mutate returns, and is
     * gone (confirmed by the echo or the invalidation's refetch) when the callback runs. */
    const char *optimistic = "{\"optimistic\": [{\"endpoint\": \"getMessages\", \"arg\": \"redux\","
                             " \"message\": {\"id\": \"local\", \"channel\": \"redux\", \"text\": \"optimistic from C\"}}],"
                             " \"confirm\": {\"text\": \"optimistic from C\"}}";
    CHECK_OK(livecache_mutate(client, "sendMessage", "{\"channel\": \"redux\", \"text\": \"optimistic from C\", \"fail\": null}", optimistic, on_mutation_done, &d));
    char *snap = NULL;
    CHECK_OK(livecache_snapshot(client, "getMessages", "\"redux\"", &snap));
    CHECK(snap && strstr(snap, "\"id\":\"local\"") && strstr(snap, "\"optimistic\":1"), "the layer is not shown at once: %s", snap);
    livecache_string_free(snap);
    CHECK(wait_mutation(&d, 2), "the optimistic mutation never completed");
    CHECK(d.result == LIVECACHE_RESULT_OK, "result %d: %s", (int)d.result, d.json);
    CHECK_OK(livecache_snapshot(client, "getMessages", "\"redux\"", &snap));
    CHECK(snap && !strstr(snap, "\"local\"") && !strstr(snap, "\"optimistic\"") && strstr(snap, "optimistic from C"), "after confirmation: %s", snap);
    livecache_string_free(snap);
    CHECK_RC(livecache_mutate(client, "sendMessage", "{\"channel\": \"redux\", \"text\": \"x\", \"fail\": null}",
                              "{\"optimistic\": [{\"endpoint\": \"getMessages\", \"arg\": \"redux\", \"message\": {\"noId\": 1}}]}", on_mutation_done, &d),
             LIVECACHE_RESULT_INVALID_ARGUMENT);

    CHECK_OK(livecache_mutate(client, "sendMessage", "{\"channel\": \"redux\", \"text\": \"refused\", \"fail\": 500}", "{}", on_mutation_done, &d));
    CHECK(wait_mutation(&d, 3), "the refused mutation never completed");
    CHECK(d.result == LIVECACHE_RESULT_MUTATION, "result %d (%s)", (int)d.result, livecache_result_kind(d.result));
    CHECK(strstr(d.json, "\"status\":500") != NULL && strstr(d.json, "refused the post") != NULL, "the server's answer: %s", d.json);
    CHECK(strcmp(livecache_result_kind(LIVECACHE_RESULT_MUTATION), "MutationError") == 0, "kind name");

    /* Refused at once: the callback never runs for these. */
    CHECK_RC(livecache_mutate(client, "getMessages", "\"redux\"", NULL, on_mutation_done, &d), LIVECACHE_RESULT_WRONG_ENDPOINT_KIND);
    CHECK_RC(livecache_mutate(client, "sendMessage", "{\"text\": \"no channel\", \"fail\": null}", NULL, on_mutation_done, &d), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(livecache_last_error(), "channel") != NULL, "message: %s", livecache_last_error());
    CHECK_RC(livecache_mutate(client, "sendMessage", "{\"channel\": \"redux\", \"text\": \"t\", \"fail\": null}", "{\"optimistc\": []}", on_mutation_done, &d), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(livecache_last_error(), "unknown mutate option") != NULL, "message: %s", livecache_last_error());
    CHECK_RC(livecache_mutate(client, "sendMessage", "{}", NULL, NULL, &d), LIVECACHE_RESULT_NULL_PARAMETER);
    CHECK_RC(livecache_mutate(client, "nope", "{}", NULL, on_mutation_done, &d), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);
    CHECK_RC(livecache_subscribe(client, "sendMessage", NULL, recorder_cb, &rec, &sub), LIVECACHE_RESULT_WRONG_ENDPOINT_KIND);

    /* invalidate_tags from the host: one more refetch; bad tags change nothing. */
    fetched = server_stat("httpRequests");
    int snapshots = recorder_count(&rec, "snapshot");
    CHECK_OK(livecache_invalidate_tags(client, "[\"Messages\"]"));
    CHECK(recorder_wait_count(&rec, "snapshot", snapshots + 1, WAIT), "no refetch after invalidate_tags");
    CHECK(server_stat("httpRequests") == fetched + 1, "refetches: %g", server_stat("httpRequests") - fetched);
    CHECK_RC(livecache_invalidate_tags(client, "[\"Users\"]"), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(livecache_invalidate_tags(client, "{\"type\": \"Messages\"}"), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(livecache_invalidate_tags(client, "[\"Messages\""), LIVECACHE_RESULT_INVALID_JSON);
    CHECK(wait_mutation(&d, 3) && d.calls == 3, "a refused call called back: %d calls", d.calls);

    livecache_unsubscribe(sub);
    livecache_client_free(client);
    recorder_destroy(&rec);
}

/* P1/P3 from C on the manual clock: a polling subscription's fetches are counted on the server
 * as the clock advances, and stop with the subscription; prefetch fetches without subscribing;
 * reset_api_state removes every entry (a `removed` event) and the client goes on. */
static int wait_requests(double want) {
    double deadline = now_seconds() + WAIT;
    while (server_stat("httpRequests") < want && now_seconds() < deadline) sleep_ms(5);
    return server_stat("httpRequests") >= want;
}

static int wait_status(livecache_client *client, const char *arg, const char *status) {
    double deadline = now_seconds() + WAIT;
    for (;;) {
        char *snap = NULL;
        int found = livecache_snapshot(client, "getMessages", arg, &snap) == LIVECACHE_RESULT_OK && strstr(snap, status) != NULL;
        livecache_string_free(snap);
        if (found) return 1;
        if (now_seconds() > deadline) return 0;
        sleep_ms(5);
    }
}

static void polling_prefetch_and_reset(void) {
    reset();
    char text[1024];
    snprintf(text, sizeof text, "{\"baseUrl\": \"http://127.0.0.1:%d/\", \"endpoints\": {\"getMessages\": {\"query\": \"messages/{arg}\"}}}", server.port);
    livecache_client *client = NULL;
    CHECK_OK(livecache_client_new_with_options(text, "{\"clock\": \"manual\"}", NULL, &client));
    recorder rec;
    recorder_init(&rec);
    livecache_subscription *sub = NULL;
    CHECK_OK(livecache_subscribe_with_options(client, "getMessages", "\"redux\"", "{\"pollingInterval\": 200}", recorder_cb, &rec, &sub));
    CHECK(wait_status(client, "\"redux\"", "\"fulfilled\""), "the first fetch never landed");
    double base = server_stat("httpRequests");
    for (int i = 1; i <= 3; i++) {
        CHECK(wait_status(client, "\"redux\"", "\"fulfilled\""), "a fetch still in flight");
        CHECK_OK(livecache_client_advance(client, 200));
        CHECK(wait_requests(base + i), "poll %d never reached the server", i);
    }
    livecache_unsubscribe(sub);
    CHECK(wait_status(client, "\"redux\"", "\"fulfilled\""), "a fetch still in flight");
    CHECK_OK(livecache_client_advance(client, 2000));
    CHECK(server_stat("httpRequests") == base + 3, "a poll after the last poller left: %g", server_stat("httpRequests") - base);
    CHECK_RC(livecache_subscribe_with_options(client, "getMessages", "\"x\"", "{\"pollingInterval\": 0}", recorder_cb, &rec, &sub), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(livecache_subscribe_with_options(client, "getMessages", "\"x\"", "{\"poll\": 1}", recorder_cb, &rec, &sub), LIVECACHE_RESULT_INVALID_ARGUMENT);

    CHECK_OK(livecache_prefetch(client, "getMessages", "\"general\"", NULL));
    CHECK(wait_status(client, "\"general\"", "\"fulfilled\""), "prefetch never fetched");
    double fetched = server_stat("httpRequests");
    CHECK_OK(livecache_prefetch(client, "getMessages", "\"general\"", "{\"ifOlderThan\": 60}"));
    CHECK(server_stat("httpRequests") == fetched, "fresh data fetched again");
    CHECK_OK(livecache_prefetch(client, "getMessages", "\"general\"", "{\"force\": true}"));
    CHECK(wait_requests(fetched + 1), "force did not refetch");
    CHECK_RC(livecache_prefetch(client, "getMessages", "\"general\"", "{\"force\": 1}"), LIVECACHE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(livecache_prefetch(client, "nope", NULL, NULL), LIVECACHE_RESULT_UNKNOWN_ENDPOINT);

    recorder kept;
    recorder_init(&kept);
    livecache_subscription *live = NULL;
    CHECK_OK(livecache_subscribe(client, "getMessages", "\"redux\"", recorder_cb, &kept, &live));
    CHECK(recorder_wait_count(&kept, "snapshot", 1, WAIT), "no snapshot");
    CHECK_OK(livecache_reset_api_state(client));
    CHECK(recorder_wait_count(&kept, "removed", 1, WAIT), "reset_api_state sent no removed event");
    char *stats = NULL;
    CHECK_OK(livecache_stats(client, &stats));
    CHECK(strstr(stats, "\"entries\":0") != NULL, "entries left: %s", stats);
    livecache_string_free(stats);
    livecache_unsubscribe(live);
    CHECK_OK(livecache_prefetch(client, "getMessages", "\"redux\"", NULL));
    CHECK(wait_status(client, "\"redux\"", "\"fulfilled\""), "the client is not usable after a reset");
    CHECK_RC(livecache_reset_api_state(NULL), LIVECACHE_RESULT_NULL_PARAMETER);
    livecache_client_free(client);
    recorder_destroy(&rec);
    recorder_destroy(&kept);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s PYTHON CHAT_SERVER_SCRIPT\n", argv[0]);
        return 2;
    }
    if (chat_server_start(&server, argv[1], argv[2]) != 0) {
        fprintf(stderr, "cannot start the chat server %s with %s\n", argv[2], argv[1]);
        count_case("chat_server_starts", 1);
        return finish();
    }
    run_case("chat_fetch_then_stream", chat_fetch_then_stream);
    run_case("subscribers_of_one_key_share_one_socket", subscribers_of_one_key_share_one_socket);
    run_case("dropped_stream_reconnects_and_resyncs", dropped_stream_reconnects_and_resyncs);
    run_case("bad_frames_are_error_events", bad_frames_are_error_events);
    run_case("client_free_with_open_sockets_closes_them", client_free_with_open_sockets_closes_them);
    run_case("unused_entry_removal_closes_its_socket", unused_entry_removal_closes_its_socket);
    run_case("pull_mode_against_the_server", pull_mode_against_the_server);
    run_case("send_and_reconnect", send_and_reconnect);
    run_case("prepare_headers_hook", prepare_headers_hook);
    run_case("mutate_posts_and_invalidates", mutate_posts_and_invalidates);
    run_case("polling_prefetch_and_reset", polling_prefetch_and_reset);
    chat_server_stop(&server);
    return finish();
}
