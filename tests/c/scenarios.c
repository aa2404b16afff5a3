/* Runs every shared scenario of tests/scenarios/ (see its README) through the C API, with the
 * expectations of core/tests/scenarios.rs. Events are replayed with json.c's RFC 6902
 * implementation, independent of the engine's.
 *
 * usage: scenarios DIR [NAME.json ...] */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

#define TIMEOUT 10.0
#define MAX_SUBS 32
#define MAX_PENDING 256

/* Every call a `queryFn: "manual"` hook got, in order; `request` is NULL once answered. */
typedef struct {
    char *key;
    livecache_request *request;
} pending_call;

typedef struct {
    pthread_mutex_t lock;
    pending_call calls[MAX_PENDING];
    int n;
} pending_list;

typedef struct {
    char name[64];
    livecache_subscription *sub; /* NULL once unsubscribed */
    recorder rec;
} named_sub;

/* What a `{"data": X}` / `{"error": E}` query hook answers with. */
typedef struct {
    char *endpoint;
    char *data;   /* JSON text, or NULL */
    char *error;  /* JSON text, or NULL */
    pending_list *pending; /* for "manual" */
} query_hook;

typedef struct {
    const char *file;
    livecache_client *client;
    pending_list pending;
    named_sub subs[MAX_SUBS];
    int nsubs;
    /* The last host update, for `undoLast`. */
    char *last_endpoint, *last_arg, *last_inverse;
    int has_last;
} runner;

/* ---- hooks ---- */

static void query_manual(void *user_data, const char *arg_json, livecache_request *request) {
    (void)arg_json;
    pending_list *p = ((query_hook *)user_data)->pending;
    pthread_mutex_lock(&p->lock);
    if (p->n < MAX_PENDING) {
        p->calls[p->n].key = strdup(livecache_request_key(request));
        p->calls[p->n].request = request;
        p->n++;
        request = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (request) livecache_request_reject(request, "{\"status\":\"CUSTOM_ERROR\",\"error\":\"too many calls\"}");
}

static void query_answer(void *user_data, const char *arg_json, livecache_request *request) {
    (void)arg_json;
    query_hook *h = user_data;
    if (h->data)
        livecache_request_fulfill(request, h->data);
    else
        livecache_request_reject(request, h->error);
}

/* `onMessage: "push"`: the draft is an array (null becomes []) and the message is pushed. */
static void on_message_push(void *user_data, const char *data_json, const char *message_json, const char *arg_json,
                            livecache_update *update) {
    (void)user_data;
    (void)arg_json;
    size_t n = strlen(message_json) + 64;
    char *ops = malloc(n);
    if (strncmp(data_json, "null", 4) == 0) {
        snprintf(ops, n, "[{\"op\":\"replace\",\"path\":\"\",\"value\":[%s]}]", message_json);
        livecache_update_set_patches(update, ops);
    } else if (data_json[0] == '[') {
        snprintf(ops, n, "[{\"op\":\"add\",\"path\":\"/-\",\"value\":%s}]", message_json);
        livecache_update_set_patches(update, ops);
    } else {
        livecache_update_fail(update, "the data is not an array");
    }
    free(ops);
}

static void on_message_throw(void *user_data, const char *data_json, const char *message_json, const char *arg_json,
                             livecache_update *update) {
    (void)user_data;
    (void)data_json;
    (void)message_json;
    (void)arg_json;
    livecache_update_fail(update, "boom");
}

/* ---- helpers ---- */

static char *arg_text(const jvalue *step) {
    const jvalue *arg = json_get(step, "arg");
    return arg ? json_dump(arg) : NULL;
}

static const char *endpoint_of(const jvalue *step) {
    const char *e = json_string(json_get(step, "endpoint"));
    return e ? e : "";
}

static named_sub *find_sub(runner *r, const char *name) {
    for (int i = 0; i < r->nsubs; i++)
        if (strcmp(r->subs[i].name, name) == 0) return &r->subs[i];
    return NULL;
}

/* `actual` has every field of `expected` with an equal value (objects recursively). */
static int subset(const jvalue *expected, const jvalue *actual) {
    if (!actual) return 0;
    if (json_is(expected, J_OBJECT) && json_is(actual, J_OBJECT)) {
        for (size_t i = 0; i < expected->n; i++)
            if (!subset(expected->items[i], json_get(actual, expected->keys[i]))) return 0;
        return 1;
    }
    return json_equal(expected, actual);
}

static long sub_version(named_sub *s) {
    char *snap = NULL;
    if (livecache_subscription_snapshot(s->sub, &snap) != LIVECACHE_RESULT_OK) return 0;
    jvalue *v = take_json(snap);
    const jvalue *ver = json_get(v, "version");
    long out = json_is(ver, J_NUMBER) ? (long)ver->num : 0;
    json_free(v);
    return out;
}

/* Waits until every active subscriber has seen the engine's current version. */
static void settle(runner *r) {
    for (int i = 0; i < r->nsubs; i++) {
        named_sub *s = &r->subs[i];
        if (!s->sub) continue;
        double deadline = now_seconds() + TIMEOUT;
        for (;;) {
            long target = sub_version(s);
            if (recorder_wait_version(&s->rec, target, 0.02)) break;
            if (now_seconds() > deadline) {
                CHECK(0, "%s: subscriber %s stuck at version %ld (engine %ld)", r->file, s->name, s->rec.version, target);
                break;
            }
        }
    }
    /* Let events that carry no version (status, stream, error) arrive too. */
    sleep_ms(30);
}

static void check_replicas(runner *r, const char *context) {
    for (int i = 0; i < r->nsubs; i++) {
        named_sub *s = &r->subs[i];
        if (!s->sub) continue;
        char *snap = NULL;
        if (livecache_subscription_snapshot(s->sub, &snap) != LIVECACHE_RESULT_OK) continue;
        char why[300];
        int ok = recorder_matches(&s->rec, snap, why, sizeof why);
        CHECK(ok, "%s: %s: subscriber %s: %s", r->file, context, s->name, why);
        livecache_string_free(snap);
    }
}

static void remember_update(runner *r, const char *endpoint, const char *arg, char *result) {
    jvalue *v = take_json(result);
    free(r->last_endpoint);
    free(r->last_arg);
    free(r->last_inverse);
    r->last_endpoint = strdup(endpoint);
    r->last_arg = arg ? strdup(arg) : NULL;
    r->last_inverse = json_dump(json_get(v, "inversePatches"));
    r->has_last = 1;
    json_free(v);
}

/* `updateQueryData` step recipe: set the value at a JSON Pointer of the draft ("" replaces it). */
typedef struct {
    const char *path;
    const jvalue *value;
} set_at;

static void recipe_set_at(void *user_data, const char *data_json, livecache_update *update) {
    set_at *s = user_data;
    jvalue *draft = json_parse_or_die(data_json);
    jvalue *ops = json_new(J_ARRAY);
    jvalue *op = json_new(J_OBJECT);
    /* "set": replace what is there, else add (a new member, or "-" to append). */
    json_set(op, "op", json_new_string(json_pointer(draft, s->path) ? "replace" : "add"));
    json_set(op, "path", json_new_string(s->path));
    json_set(op, "value", json_clone(s->value));
    json_push(ops, op);
    char err[200];
    if (json_patch(&draft, ops, err, sizeof err) != 0) {
        livecache_update_fail(update, err);
    } else {
        char *text = json_dump(draft);
        livecache_update_set_data(update, text);
        free(text);
    }
    json_free(ops);
    json_free(draft);
}

static int check_events(runner *r, const jvalue *exp, char *why, size_t whylen) {
    const char *name = json_string(json_get(exp, "sub"));
    named_sub *s = name ? find_sub(r, name) : NULL;
    if (!s) {
        snprintf(why, whylen, "expectEvents for unknown subscriber %s", name ? name : "?");
        return 0;
    }
    pthread_mutex_lock(&s->rec.lock);
    jvalue *events = s->rec.events;
    char types[1024] = "";
    for (size_t i = 0; i < events->n && strlen(types) < 900; i++) {
        strcat(types, json_string(json_get(events->items[i], "type")));
        strcat(types, " ");
    }
    int ok = 1;
    const char *first = json_string(json_get(exp, "first"));
    if (first) {
        const char *got = events->n ? json_string(json_get(events->items[0], "type")) : "(none)";
        if (strcmp(first, got) != 0) {
            snprintf(why, whylen, "first event of %s is not %s: [%s]", name, first, types);
            ok = 0;
        }
    }
    const jvalue *lists[2] = {json_get(exp, "includes"), json_get(exp, "excludes")};
    for (int k = 0; ok && k < 2; k++) {
        for (size_t i = 0; ok && lists[k] && i < lists[k]->n; i++) {
            const char *t = json_string(lists[k]->items[i]);
            int seen = 0;
            for (size_t j = 0; j < events->n; j++)
                if (strcmp(json_string(json_get(events->items[j], "type")), t) == 0) seen = 1;
            if (seen != (k == 0)) {
                snprintf(why, whylen, "%s %s %s: [%s]", name, k == 0 ? "never got" : "got", t, types);
                ok = 0;
            }
        }
    }
    const jvalue *errors = json_get(exp, "errors");
    if (ok && errors) {
        jvalue *reasons = json_new(J_ARRAY);
        for (size_t j = 0; j < events->n; j++)
            if (strcmp(json_string(json_get(events->items[j], "type")), "error") == 0)
                json_push(reasons, json_clone(json_get(events->items[j], "reason")));
        if (!json_equal(reasons, errors)) {
            char *got = json_dump(reasons), *want = json_dump(errors);
            snprintf(why, whylen, "error reasons of %s: expected %s, got %s", name, want, got);
            free(got);
            free(want);
            ok = 0;
        }
        json_free(reasons);
    }
    const jvalue *version = json_get(exp, "version");
    if (ok && version && s->rec.version != (long)version->num) {
        snprintf(why, whylen, "last version seen by %s is %ld, expected %ld", name, s->rec.version, (long)version->num);
        ok = 0;
    }
    pthread_mutex_unlock(&s->rec.lock);
    return ok;
}

/* Finds the call to answer: the `call`-th ever made for `key` (1-based), else the oldest
 * unanswered one. Takes it out of the list (the slot stays, for numbering). */
static livecache_request *take_call(runner *r, const char *key, long call) {
    livecache_request *request = NULL;
    pthread_mutex_lock(&r->pending.lock);
    long seen = 0;
    for (int i = 0; i < r->pending.n; i++) {
        pending_call *c = &r->pending.calls[i];
        if (strcmp(c->key, key) != 0) continue;
        seen++;
        if (call > 0 ? seen == call : c->request != NULL) {
            if (call > 0 && !c->request) CHECK(0, "%s: call %ld of %s was already answered", r->file, call, key);
            request = c->request;
            c->request = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&r->pending.lock);
    return request;
}

static long calls_made(runner *r, const char *key) {
    long n = 0;
    pthread_mutex_lock(&r->pending.lock);
    for (int i = 0; i < r->pending.n; i++)
        if (strcmp(r->pending.calls[i].key, key) == 0) n++;
    pthread_mutex_unlock(&r->pending.lock);
    return n;
}

static livecache_result answer_fetch(runner *r, const jvalue *step, const char *endpoint, const char *arg) {
    char *key = NULL;
    livecache_result rc = livecache_cache_key(r->client, endpoint, arg, &key);
    if (rc != LIVECACHE_RESULT_OK) return rc;
    const jvalue *call_v = json_get(step, "call");
    long call = json_is(call_v, J_NUMBER) ? (long)call_v->num : 0;
    livecache_request *request = NULL;
    double deadline = now_seconds() + TIMEOUT;
    while (!(request = take_call(r, key, call))) {
        if (now_seconds() > deadline) {
            CHECK(0, "%s: timed out waiting for a pending query call for %s (call %ld)", r->file, key, call);
            break;
        }
        sleep_ms(5);
    }
    livecache_string_free(key);
    if (!request) return LIVECACHE_RESULT_OK;
    const jvalue *data = json_get(step, "resolveFetch");
    char *text = json_dump(data ? data : json_get(step, "rejectFetch"));
    rc = data ? livecache_request_fulfill(request, text) : livecache_request_reject(request, text);
    free(text);
    return rc;
}

static livecache_result await_fetch(runner *r, long n, const char *endpoint, const char *arg) {
    char *key = NULL;
    livecache_result rc = livecache_cache_key(r->client, endpoint, arg, &key);
    if (rc != LIVECACHE_RESULT_OK) return rc;
    double deadline = now_seconds() + TIMEOUT;
    while (calls_made(r, key) < n) {
        if (now_seconds() > deadline) {
            CHECK(0, "%s: timed out waiting for %ld query calls for %s", r->file, n, key);
            break;
        }
        sleep_ms(5);
    }
    livecache_string_free(key);
    return LIVECACHE_RESULT_OK;
}

/* `expectSnapshot`: `data` and `error` compare whole, other fields as `subset`. */
static int snapshot_matches(const jvalue *expected, const jvalue *actual) {
    if (!json_is(expected, J_OBJECT)) return 0;
    for (size_t i = 0; i < expected->n; i++) {
        const char *k = expected->keys[i];
        const jvalue *a = json_get(actual, k);
        if (!a) return 0;
        int whole = strcmp(k, "data") == 0 || strcmp(k, "error") == 0;
        if (whole ? !json_equal(expected->items[i], a) : !subset(expected->items[i], a)) return 0;
    }
    return 1;
}

/* One try of an expectation; 1 when it holds, else 0 with the reason in `why`. */
static int check_expectation(runner *r, const jvalue *step, const char *endpoint, const char *arg, char *why, size_t whylen) {
    const jvalue *v;
    int ok = 1;
    if ((v = json_get(step, "expectSnapshot"))) {
        char *snap = NULL;
        livecache_result rc = livecache_snapshot(r->client, endpoint, arg, &snap);
        if (rc != LIVECACHE_RESULT_OK) {
            snprintf(why, whylen, "snapshot: %s", livecache_last_error());
            return 0;
        }
        jvalue *actual = json_parse_or_die(snap);
        if (!snapshot_matches(v, actual)) {
            char *want = json_dump(v);
            snprintf(why, whylen, "snapshot\n    expected %s\n    actual   %s", want, snap);
            free(want);
            ok = 0;
        }
        json_free(actual);
        livecache_string_free(snap);
    } else if (json_get(step, "expectNotFound")) {
        char *snap = NULL;
        livecache_result rc = livecache_snapshot(r->client, endpoint, arg, &snap);
        if (snap) {
            if (rc != LIVECACHE_RESULT_OK) CHECK(0, "%s: out-parameter written on failure", r->file);
            livecache_string_free(snap);
        }
        if (rc != LIVECACHE_RESULT_NOT_FOUND) {
            snprintf(why, whylen, "expected NOT_FOUND, got %s", livecache_result_kind(rc));
            ok = 0;
        }
    } else if ((v = json_get(step, "expectEvents"))) {
        ok = check_events(r, v, why, whylen);
    } else if ((v = json_get(step, "expectStats"))) {
        char *stats = NULL;
        if (livecache_stats(r->client, &stats) != LIVECACHE_RESULT_OK) {
            snprintf(why, whylen, "stats: %s", livecache_last_error());
            return 0;
        }
        jvalue *actual = json_parse_or_die(stats);
        if (!subset(v, actual)) {
            char *want = json_dump(v);
            snprintf(why, whylen, "stats\n    expected %s\n    actual   %s", want, stats);
            free(want);
            ok = 0;
        }
        json_free(actual);
        livecache_string_free(stats);
    }
    return ok;
}

/* An expectation holds once the engine has caught up: retried (settling each time) until it
 * holds, failing only after TIMEOUT. */
static void expect(runner *r, const jvalue *step, const char *endpoint, const char *arg) {
    double deadline = now_seconds() + TIMEOUT;
    char why[4096];
    for (;;) {
        settle(r);
        if (check_expectation(r, step, endpoint, arg, why, sizeof why)) break;
        if (now_seconds() >= deadline) {
            CHECK(0, "%s: %s", r->file, why);
            break;
        }
        sleep_ms(20);
    }
    if (json_get(step, "expectSnapshot")) {
        settle(r);
        check_replicas(r, "expectSnapshot");
    }
}

static void run_step(runner *r, const jvalue *step) {
    const char *endpoint = endpoint_of(step);
    char *arg = arg_text(step);
    const char *expect_error = json_string(json_get(step, "expectError"));
    const char *name;
    const jvalue *v;
    livecache_result rc = LIVECACHE_RESULT_OK;
    char *step_text = json_dump(step);

    if ((name = json_string(json_get(step, "subscribe")))) {
        if (r->nsubs == MAX_SUBS) abort();
        named_sub *s = &r->subs[r->nsubs];
        recorder_init(&s->rec);
        snprintf(s->name, sizeof s->name, "%s", name);
        rc = livecache_subscribe(r->client, endpoint, arg, recorder_cb, &s->rec, &s->sub);
        if (rc == LIVECACHE_RESULT_OK)
            r->nsubs++;
        else
            recorder_destroy(&s->rec);
    } else if ((name = json_string(json_get(step, "unsubscribe")))) {
        named_sub *s = find_sub(r, name);
        if (s) {
            livecache_unsubscribe(s->sub);
            s->sub = NULL;
        }
    } else if ((v = json_get(step, "push"))) {
        char *text = json_dump(v);
        rc = livecache_push_message(r->client, endpoint, arg, text);
        free(text);
    } else if ((v = json_get(step, "pushText"))) {
        rc = livecache_push_message(r->client, endpoint, arg, json_string(v));
    } else if (json_get(step, "resolveFetch") || json_get(step, "rejectFetch")) {
        rc = answer_fetch(r, step, endpoint, arg);
    } else if ((v = json_get(step, "patchQueryData"))) {
        char *text = json_dump(v), *result = NULL;
        rc = livecache_patch_query_data(r->client, endpoint, arg, text, &result);
        if (rc == LIVECACHE_RESULT_OK) remember_update(r, endpoint, arg, result);
        free(text);
    } else if ((v = json_get(step, "updateQueryData"))) {
        set_at s = {json_string(json_get(v, "path")), json_get(v, "value")};
        char *result = NULL;
        rc = livecache_update_query_data(r->client, endpoint, arg, recipe_set_at, &s, &result);
        if (rc == LIVECACHE_RESULT_OK) remember_update(r, endpoint, arg, result);
    } else if ((v = json_get(step, "upsertQueryData"))) {
        char *text = json_dump(v);
        rc = livecache_upsert_query_data(r->client, endpoint, arg, text);
        free(text);
    } else if (json_get(step, "undoLast")) {
        CHECK(r->has_last, "%s: undoLast without a host update", r->file);
        if (r->has_last) {
            char *result = NULL;
            char *ep = strdup(r->last_endpoint), *a = r->last_arg ? strdup(r->last_arg) : NULL;
            rc = livecache_patch_query_data(r->client, ep, a, r->last_inverse, &result);
            if (rc == LIVECACHE_RESULT_OK) remember_update(r, ep, a, result);
            free(ep);
            free(a);
        }
    } else if (json_get(step, "refetch")) {
        rc = livecache_refetch(r->client, endpoint, arg);
    } else if ((v = json_get(step, "advance"))) {
        /* Virtual time (the scenario's "clock": "manual"): L7's waits without sleeping. */
        rc = livecache_client_advance(r->client, (uint64_t)v->num);
    } else if (json_get(step, "settle")) {
        settle(r);
    } else if ((v = json_get(step, "awaitFetch"))) {
        rc = await_fetch(r, (long)v->num, endpoint, arg);
    } else if (json_get(step, "expectSnapshot") || json_get(step, "expectNotFound") || json_get(step, "expectEvents") ||
               json_get(step, "expectStats")) {
        expect(r, step, endpoint, arg);
    } else {
        CHECK(0, "%s: unknown step %s", r->file, step_text);
    }

    const char *got = rc == LIVECACHE_RESULT_OK ? NULL : livecache_result_kind(rc);
    if (expect_error) {
        CHECK(got && strcmp(got, expect_error) == 0, "%s: step %s: expected error %s, got %s (%s)", r->file, step_text,
              expect_error, got ? got : "success", got ? livecache_last_error() : "");
    } else {
        CHECK(!got, "%s: step %s failed: %s: %s", r->file, step_text, got, livecache_last_error());
    }
    free(step_text);
    free(arg);
}

static void run_scenario(const char *dir, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        CHECK(0, "cannot open %s", path);
        return;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    size_t got = fread(text, 1, (size_t)size, f);
    text[got] = 0;
    fclose(f);
    jvalue *scenario = json_parse_or_die(text);
    free(text);

    runner r;
    memset(&r, 0, sizeof r);
    r.file = file;
    pthread_mutex_init(&r.pending.lock, NULL);

    /* Hooks, written in C (the README's "manual", data/error, push and throw). */
    livecache_hooks *hooks = NULL;
    CHECK_OK(livecache_hooks_new(&hooks));
    query_hook qhooks[16];
    int nq = 0;
    const jvalue *spec = json_get(scenario, "hooks");
    for (size_t i = 0; spec && i < spec->n && nq < 16; i++) {
        const char *ep = spec->keys[i];
        const jvalue *h = spec->items[i];
        const jvalue *q = json_get(h, "queryFn");
        if (q) {
            query_hook *qh = &qhooks[nq++];
            memset(qh, 0, sizeof *qh);
            qh->endpoint = strdup(ep);
            qh->pending = &r.pending;
            if (json_string(q) && strcmp(json_string(q), "manual") == 0) {
                CHECK_OK(livecache_hooks_set_query_fn(hooks, ep, query_manual, qh));
            } else {
                if (json_get(q, "data")) qh->data = json_dump(json_get(q, "data"));
                if (json_get(q, "error")) qh->error = json_dump(json_get(q, "error"));
                CHECK_OK(livecache_hooks_set_query_fn(hooks, ep, query_answer, qh));
            }
        }
        const char *m = json_string(json_get(h, "onMessage"));
        if (m && strcmp(m, "push") == 0) CHECK_OK(livecache_hooks_set_on_message(hooks, ep, on_message_push, NULL));
        if (m && strcmp(m, "throw") == 0) CHECK_OK(livecache_hooks_set_on_message(hooks, ep, on_message_throw, NULL));
    }

    char *config = json_dump(json_get(scenario, "config"));
    const char *clock = json_string(json_get(scenario, "clock"));
    const char *options = clock && strcmp(clock, "manual") == 0 ? "{\"clock\":\"manual\"}" : NULL;
    livecache_result rc = livecache_client_new_with_options(config, options, hooks, &r.client);
    free(config);
    livecache_hooks_free(hooks);
    const char *expect_config_error = json_string(json_get(scenario, "expectConfigError"));
    if (expect_config_error) {
        char want[300];
        snprintf(want, sizeof want, "at %s:", expect_config_error);
        CHECK(rc == LIVECACHE_RESULT_CONFIG, "%s: expected CONFIG, got %d", file, (int)rc);
        CHECK(strstr(livecache_last_error(), want) != NULL, "%s: message %s does not name %s", file, livecache_last_error(),
              expect_config_error);
        CHECK(r.client == NULL, "%s: out-parameter written on failure", file);
        livecache_client_free(r.client);
    } else if (rc != LIVECACHE_RESULT_OK) {
        CHECK(0, "%s: client: %s", file, livecache_last_error());
    } else {
        const jvalue *steps = json_get(scenario, "steps");
        for (size_t i = 0; steps && i < steps->n; i++) run_step(&r, steps->items[i]);
        settle(&r);
        check_replicas(&r, "end");
        livecache_client_free(r.client);
    }
    for (int i = 0; i < r.nsubs; i++) {
        livecache_unsubscribe(r.subs[i].sub);
        recorder_destroy(&r.subs[i].rec);
    }
    /* Calls still waiting are answered now, which only releases them. */
    for (int i = 0; i < r.pending.n; i++) {
        if (r.pending.calls[i].request) CHECK_OK(livecache_request_reject(r.pending.calls[i].request, NULL));
        free(r.pending.calls[i].key);
    }
    for (int i = 0; i < nq; i++) {
        free(qhooks[i].endpoint);
        free(qhooks[i].data);
        free(qhooks[i].error);
    }
    pthread_mutex_destroy(&r.pending.lock);
    free(r.last_endpoint);
    free(r.last_arg);
    free(r.last_inverse);
    json_free(scenario);
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

static int is_scenario(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SCENARIO_DIR [FILE.json ...]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    if (argc > 2) {
        for (int i = 2; i < argc; i++) {
            case_failed = 0;
            run_scenario(dir, argv[i]);
            count_case(argv[i], case_failed);
        }
        return finish();
    }
    struct dirent **names;
    int n = scandir(dir, &names, is_scenario, by_name);
    if (n <= 0) {
        fprintf(stderr, "no scenario files in %s\n", dir);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        case_failed = 0;
        run_scenario(dir, names[i]->d_name);
        count_case(names[i]->d_name, case_failed);
        free(names[i]);
    }
    free(names);
    return finish();
}
