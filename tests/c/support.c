#include "support.h"

#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

int case_failed;
static int passed_cases, failed_cases;

void count_case(const char *name, int failed) {
    if (failed) {
        failed_cases++;
        printf("not ok - %s\n", name);
    } else {
        passed_cases++;
        printf("ok - %s\n", name);
    }
    fflush(stdout);
}

void run_case(const char *name, void (*fn)(void)) {
    case_failed = 0;
    fn();
    count_case(name, case_failed);
}

int finish(void) {
    printf("RESULT passed=%d failed=%d\n", passed_cases, failed_cases);
    fflush(stdout);
    return failed_cases ? 1 : 0;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

jvalue *take_json(char *s) {
    if (!s) return NULL;
    jvalue *v = json_parse_or_die(s);
    livecache_string_free(s);
    return v;
}

void recorder_init(recorder *rec) {
    memset(rec, 0, sizeof *rec);
    pthread_mutex_init(&rec->lock, NULL);
    pthread_cond_init(&rec->changed, NULL);
    rec->events = json_new(J_ARRAY);
}

void recorder_destroy(recorder *rec) {
    json_free(rec->events);
    json_free(rec->replica);
    pthread_mutex_destroy(&rec->lock);
    pthread_cond_destroy(&rec->changed);
}

static void problem(recorder *rec, const char *fmt, ...) {
    if (rec->problems < RECORDER_MAX_PROBLEMS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rec->problem[rec->problems], sizeof rec->problem[0], fmt, ap);
        va_end(ap);
    }
    rec->problems++;
}

static long number_of(const jvalue *v) { return json_is(v, J_NUMBER) ? (long)v->num : -1; }

void recorder_cb(void *user_data, const char *event_json, size_t len) {
    recorder *rec = user_data;
    char err[200];
    jvalue *event = json_parse(event_json, len, err, sizeof err);
    pthread_mutex_lock(&rec->lock);
    if (strlen(event_json) != len) problem(rec, "len %zu but strlen %zu", len, strlen(event_json));
    if (!event) {
        problem(rec, "event is not JSON (%s): %.100s", err, event_json);
        pthread_mutex_unlock(&rec->lock);
        return;
    }
    const char *type = json_string(json_get(event, "type"));
    if (!type) {
        problem(rec, "event without type");
    } else if (strcmp(type, "snapshot") == 0) {
        json_free(rec->replica);
        rec->replica = json_clone(json_get(event, "data"));
        rec->version = number_of(json_get(event, "version"));
    } else if (strcmp(type, "patch") == 0) {
        long from = number_of(json_get(event, "from")), version = number_of(json_get(event, "version"));
        const jvalue *patches = json_get(event, "patches");
        if (from != rec->version) problem(rec, "patch from %ld but the replica is at %ld", from, rec->version);
        if (from >= version) problem(rec, "patch from %ld to %ld", from, version);
        for (size_t i = 0; patches && i < patches->n; i++) {
            const char *path = json_string(json_get(patches->items[i], "path"));
            const char *op = json_string(json_get(patches->items[i], "op"));
            if (path && *path == 0) problem(rec, "a patch targets the root (E1)");
            if (op && strcmp(op, "test") == 0) problem(rec, "a test op in an event (E1)");
        }
        if (!rec->replica) {
            problem(rec, "a patch before any snapshot");
        } else if (json_patch(&rec->replica, patches, err, sizeof err) != 0) {
            problem(rec, "patch does not apply: %s", err);
        }
        rec->version = version;
    } else if (strcmp(type, "removed") == 0) {
        rec->removed = 1;
    }
    json_push(rec->events, event);
    pthread_cond_broadcast(&rec->changed);
    void (*after)(recorder *, const jvalue *) = rec->after;
    pthread_mutex_unlock(&rec->lock);
    if (after) after(rec, event);
}

static void deadline_of(double seconds, struct timespec *ts) {
    clock_gettime(CLOCK_REALTIME, ts);
    double t = (double)ts->tv_sec + (double)ts->tv_nsec / 1e9 + seconds;
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
}

int recorder_wait_version(recorder *rec, long version, double seconds) {
    struct timespec ts;
    deadline_of(seconds, &ts);
    pthread_mutex_lock(&rec->lock);
    int rc = 0;
    while (rec->version < version && rc == 0) rc = pthread_cond_timedwait(&rec->changed, &rec->lock, &ts);
    int ok = rec->version >= version;
    pthread_mutex_unlock(&rec->lock);
    return ok;
}

static int count_locked(recorder *rec, const char *type) {
    int n = 0;
    for (size_t i = 0; i < rec->events->n; i++) {
        const char *t = json_string(json_get(rec->events->items[i], "type"));
        if (!type || (t && strcmp(t, type) == 0)) n++;
    }
    return n;
}

int recorder_count(recorder *rec, const char *type) {
    pthread_mutex_lock(&rec->lock);
    int n = count_locked(rec, type);
    pthread_mutex_unlock(&rec->lock);
    return n;
}

int recorder_wait_count(recorder *rec, const char *type, int n, double seconds) {
    struct timespec ts;
    deadline_of(seconds, &ts);
    pthread_mutex_lock(&rec->lock);
    int rc = 0;
    while (count_locked(rec, type) < n && rc == 0) rc = pthread_cond_timedwait(&rec->changed, &rec->lock, &ts);
    int ok = count_locked(rec, type) >= n;
    pthread_mutex_unlock(&rec->lock);
    return ok;
}

char *recorder_replica_text(recorder *rec) {
    pthread_mutex_lock(&rec->lock);
    char *s = rec->replica ? json_dump(rec->replica) : NULL;
    pthread_mutex_unlock(&rec->lock);
    return s;
}

int recorder_matches(recorder *rec, const char *snapshot_json, char *why, size_t whylen) {
    jvalue *snap = json_parse_or_die(snapshot_json);
    long version = number_of(json_get(snap, "version"));
    pthread_mutex_lock(&rec->lock);
    int ok = 1;
    if (rec->problems) {
        snprintf(why, whylen, "%d problem(s), first: %s", rec->problems, rec->problem[0]);
        ok = 0;
    } else if (version > 0 && rec->version != version) {
        snprintf(why, whylen, "replica at version %ld, engine at %ld", rec->version, version);
        ok = 0;
    } else if (version > 0 && (!rec->replica || !json_equal(rec->replica, json_get(snap, "data")))) {
        char *mine = rec->replica ? json_dump(rec->replica) : NULL;
        snprintf(why, whylen, "replica %.80s differs from the engine's data", mine ? mine : "(none)");
        free(mine);
        ok = 0;
    }
    pthread_mutex_unlock(&rec->lock);
    json_free(snap);
    return ok;
}
