/* Shared pieces of the C test programs: checks and case reporting, and an event recorder that
 * replays every subscriber's events with the tests' own RFC 6902 implementation (json.c). */
#ifndef LIVECACHE_TEST_SUPPORT_H
#define LIVECACHE_TEST_SUPPORT_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "livecache.h"

/* ---- cases and checks ---- */

extern int case_failed;

/* A failed check marks the running case failed and goes on. */
#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            case_failed = 1;                                                              \
        }                                                                                 \
    } while (0)

/* A call that must return `want`; on a mismatch prints the last error. */
#define CHECK_RC(call, want)                                                              \
    do {                                                                                  \
        livecache_result rc_ = (call);                                                    \
        CHECK(rc_ == (want), "%s returned %d (%s: %s), expected %d", #call, (int)rc_,     \
              livecache_result_kind(rc_), livecache_last_error(), (int)(want));           \
    } while (0)

#define CHECK_OK(call) CHECK_RC(call, LIVECACHE_RESULT_OK)

/* Runs one case, prints `ok - name` / `not ok - name`. */
void run_case(const char *name, void (*fn)(void));
/* Prints `RESULT passed=N failed=M` and returns the exit status. */
int finish(void);
/* Counts one more case outcome (for programs that run cases in a loop). */
void count_case(const char *name, int failed);

/* ---- time ---- */

double now_seconds(void);
void sleep_ms(int ms);

/* ---- event recorder ---- */

#define RECORDER_MAX_PROBLEMS 8

typedef struct recorder {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    jvalue *events;   /* array of every event received, parsed */
    jvalue *replica;  /* data replayed from snapshot + patch events; NULL before a snapshot */
    long version;     /* version of the replica */
    int problems;     /* E1 violations seen (contiguity, root patches, patches that do not apply) */
    char problem[RECORDER_MAX_PROBLEMS][200];
    int removed;      /* a `removed` event arrived */
    /* Optional: called (with the lock released) after each event is recorded. */
    void (*after)(struct recorder *rec, const jvalue *event);
    void *user;
} recorder;

void recorder_init(recorder *rec);
void recorder_destroy(recorder *rec);
/* The livecache_event_cb: pass the recorder as user_data. */
void recorder_cb(void *user_data, const char *event_json, size_t len);
/* Waits until the replica reaches `version`; 0 on time-out after `seconds`. */
int recorder_wait_version(recorder *rec, long version, double seconds);
/* Waits until at least `n` events of `type` (NULL: any type) arrived; 0 on time-out. */
int recorder_wait_count(recorder *rec, const char *type, int n, double seconds);
int recorder_count(recorder *rec, const char *type);
/* The replica's data as JSON text (malloc'd) or NULL. */
char *recorder_replica_text(recorder *rec);
/* Checks the replica against the engine's `snapshot` JSON text: same version and data. */
int recorder_matches(recorder *rec, const char *snapshot_json, char *why, size_t whylen);

/* Parses a string livecache returned, then releases it with livecache_string_free. */
jvalue *take_json(char *s);

#endif
