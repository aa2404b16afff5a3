/* A program that uses an installed liblivecache the way any C project would: only
 * <livecache.h> and -llivecache, found through pkg-config or CMake. Pull mode, so it is
 * deterministic: subscribe, push two messages through the stream pipeline, run the callbacks
 * with livecache_client_poll until the second message's patch arrived. Exit 0 on success. */
#include <livecache.h>
#include <stdio.h>
#include <string.h>

static int saw_second = 0;
static int events = 0;

static void on_event(void *user_data, const char *json, size_t len) {
    (void)user_data;
    events++;
    printf("event %.*s\n", (int)len, json);
    if (strstr(json, "\"type\":\"patch\"") && strstr(json, "\"second\"")) saw_second = 1;
}

static int check(livecache_result r, const char *what) {
    if (r != LIVECACHE_RESULT_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, livecache_result_kind(r), livecache_last_error());
        return 0;
    }
    return 1;
}

int main(void) {
    const char *config = "{\"endpoints\": {\"feed\": {\"stream\": {\"apply\": \"append\"}}}}";
    livecache_client *client = NULL;
    livecache_subscription *sub = NULL;
    printf("livecache %s\n", livecache_version());
    if (!check(livecache_client_new_with_options(config, "{\"delivery\": \"poll\"}", NULL, &client), "client")) return 1;
    if (!check(livecache_subscribe(client, "feed", "\"general\"", on_event, NULL, &sub), "subscribe")) return 1;
    if (!check(livecache_push_message(client, "feed", "\"general\"", "{\"text\": \"first\"}"), "push")) return 1;
    if (!check(livecache_push_message(client, "feed", "\"general\"", "{\"text\": \"second\"}"), "push")) return 1;
    for (int i = 0; i < 100 && !saw_second; i++) {
        if (!check(livecache_client_poll(client, 100, NULL), "poll")) return 1;
    }
    /* A bad call is a clear error, not a crash. */
    livecache_result bad = livecache_push_message(client, "nowhere", "1", "{}");
    printf("bad endpoint: %s: %s\n", livecache_result_kind(bad), livecache_last_error());
    livecache_unsubscribe(sub);
    livecache_client_free(client);
    if (!saw_second || bad == LIVECACHE_RESULT_OK) {
        fprintf(stderr, "consumer: expected the second message's patch and an error (events seen: %d)\n", events);
        return 1;
    }
    puts("consumer: ok");
    return 0;
}
