/* The chat test server (tests/chat_server.py) from C: start it, call its admin routes. */
#ifndef LIVECACHE_TEST_NET_H
#define LIVECACHE_TEST_NET_H

#include <sys/types.h>

typedef struct {
    pid_t pid;
    int port;       /* chat: HTTP GET /messages/{channel} and WebSocket on / */
    int admin_port; /* admin routes with JSON bodies */
} chat_server;

/* Starts `python script --port 0` and reads its PORT / ADMIN lines. Call before any client
 * exists (it forks). 0 on success. */
int chat_server_start(chat_server *s, const char *python, const char *script);
void chat_server_stop(chat_server *s);

/* One HTTP/1.1 request to 127.0.0.1:port; returns the response body (malloc'd) or NULL. */
char *http_request(int port, const char *method, const char *target, const char *body);

#endif
