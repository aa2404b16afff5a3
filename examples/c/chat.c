/* The seed's chat scenario in C: getMessages(channel) fetches a channel's messages over HTTP,
 * then a WebSocket keeps them live; every event is printed as one JSON line.
 *
 *     python tests/chat_server.py --port 0          # prints PORT <n>
 *     cc examples/c/chat.c -I include -L target/debug -llivecache -o chat
 *     ./chat <n> [SECONDS] [CHANNEL]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "livecache.h"

static void print_event(void *user_data, const char *event_json, size_t len) {
    (void)user_data;
    /* Runs on livecache's delivery thread; the text lives only during this call. */
    fwrite(event_json, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [SECONDS] [CHANNEL]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int seconds = argc > 2 ? atoi(argv[2]) : 10;
    const char *channel = argc > 3 ? argv[3] : "redux";

    char config[1024];
    snprintf(config, sizeof config,
             "{\"baseUrl\": \"http://127.0.0.1:%d/\", \"endpoints\": {\"getMessages\": {"
             "  \"query\": \"messages/{arg}\","
             "  \"stream\": {\"url\": \"ws://127.0.0.1:%d/\", \"filter\": {\"channel\": \"{arg}\"},"
             "              \"apply\": {\"append\": {\"dedupeBy\": \"id\"}}}}}}",
             port, port);
    livecache_client *client = NULL;
    if (livecache_client_new(config, &client) != LIVECACHE_RESULT_OK) {
        fprintf(stderr, "config: %s\n", livecache_last_error());
        return 1;
    }
    char arg[256];
    snprintf(arg, sizeof arg, "\"%s\"", channel); /* the arg as JSON: a string */
    livecache_subscription *sub = NULL;
    if (livecache_subscribe(client, "getMessages", arg, print_event, NULL, &sub) != LIVECACHE_RESULT_OK) {
        fprintf(stderr, "subscribe: %s\n", livecache_last_error());
        livecache_client_free(client);
        return 1;
    }
    struct timespec wait = {seconds, 0};
    nanosleep(&wait, NULL);

    char *state = NULL;
    if (livecache_snapshot(client, "getMessages", arg, &state) == LIVECACHE_RESULT_OK) {
        fprintf(stderr, "final state: %s\n", state);
        livecache_string_free(state); /* never free() */
    }
    livecache_unsubscribe(sub);
    livecache_client_free(client); /* closes the WebSocket with a close handshake */
    return 0;
}
