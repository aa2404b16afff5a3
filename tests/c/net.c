#define _GNU_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int chat_server_start(chat_server *s, const char *python, const char *script) {
    int fds[2];
    memset(s, 0, sizeof *s);
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(python, python, script, "--port", "0", (char *)NULL);
        perror("exec python");
        _exit(127);
    }
    close(fds[1]);
    s->pid = pid;
    FILE *out = fdopen(fds[0], "r");
    char line[128];
    while ((!s->port || !s->admin_port) && fgets(line, sizeof line, out)) {
        sscanf(line, "PORT %d", &s->port);
        sscanf(line, "ADMIN %d", &s->admin_port);
    }
    fclose(out);
    if (!s->port || !s->admin_port) {
        chat_server_stop(s);
        return -1;
    }
    return 0;
}

void chat_server_stop(chat_server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

char *http_request(int port, const char *method, const char *target, const char *body) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return NULL;
    }
    size_t blen = body ? strlen(body) : 0;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     method, target, blen);
    if (write(fd, head, (size_t)n) != n || (blen && write(fd, body, blen) != (ssize_t)blen)) {
        close(fd);
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    close(fd);
    buf[len] = 0;
    char *start = strstr(buf, "\r\n\r\n");
    if (!start || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "  http %s %s: %.200s\n", method, target, buf);
        free(buf);
        return NULL;
    }
    char *out = strdup(start + 4);
    free(buf);
    return out;
}
