/* See json.h. Recursive descent parser (depth bounded), writer, equality and RFC 6902. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARSE_DEPTH 1000

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return q;
}

static char *xstrndup(const char *s, size_t n) {
    char *d = xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

jvalue *json_new(jtype t) {
    jvalue *v = xmalloc(sizeof *v);
    memset(v, 0, sizeof *v);
    v->type = t;
    return v;
}

jvalue *json_new_string(const char *s) {
    jvalue *v = json_new(J_STRING);
    v->len = strlen(s);
    v->text = xstrndup(s, v->len);
    return v;
}

static void grow(jvalue *v) {
    if (v->n < v->cap) return;
    v->cap = v->cap ? v->cap * 2 : 4;
    v->items = xrealloc(v->items, v->cap * sizeof *v->items);
    if (v->type == J_OBJECT) v->keys = xrealloc(v->keys, v->cap * sizeof *v->keys);
}

void json_push(jvalue *array, jvalue *item) {
    grow(array);
    array->items[array->n++] = item;
}

static long find_key(const jvalue *o, const char *key) {
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0) return (long)i;
    return -1;
}

void json_set(jvalue *object, const char *key, jvalue *value) {
    long i = find_key(object, key);
    if (i >= 0) {
        json_free(object->items[i]);
        object->items[i] = value;
        return;
    }
    grow(object);
    object->keys[object->n] = xstrndup(key, strlen(key));
    object->items[object->n++] = value;
}

void json_free(jvalue *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        json_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->text);
    free(v);
}

jvalue *json_clone(const jvalue *v) {
    jvalue *c = json_new(v->type);
    c->num = v->num;
    c->len = v->len;
    if (v->text) {
        size_t n = v->type == J_STRING ? v->len : strlen(v->text);
        c->text = xstrndup(v->text, n);
    }
    for (size_t i = 0; i < v->n; i++) {
        if (v->type == J_OBJECT)
            json_set(c, v->keys[i], json_clone(v->items[i]));
        else
            json_push(c, json_clone(v->items[i]));
    }
    return c;
}

/* ---- parsing ---- */

typedef struct {
    const char *s;
    size_t i, n;
    char *err;
    size_t errlen;
    int failed;
} parser;

static void fail(parser *p, const char *what) {
    if (!p->failed) seterr(p->err, p->errlen, "%s at byte %zu", what, p->i);
    p->failed = 1;
}

static void skip_ws(parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static int hex4(parser *p, unsigned *out) {
    if (p->i + 4 > p->n) return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static void put_utf8(char **buf, size_t *len, size_t *cap, unsigned cp) {
    if (*len + 4 >= *cap) {
        *cap = *cap * 2 + 8;
        *buf = xrealloc(*buf, *cap);
    }
    char *o = *buf + *len;
    if (cp < 0x80) { o[0] = (char)cp; *len += 1; }
    else if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); *len += 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        *len += 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
        *len += 4;
    }
}

/* Parses a string after its opening quote; returns malloc'd bytes (NUL-terminated) or NULL. */
static char *parse_string_body(parser *p, size_t *out_len) {
    size_t cap = 16, len = 0;
    char *buf = xmalloc(cap);
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') {
            buf[len] = 0;
            *out_len = len;
            return buf;
        }
        if (c < 0x20) break;
        if (c != '\\') {
            if (len + 2 >= cap) { cap *= 2; buf = xrealloc(buf, cap); }
            buf[len++] = (char)c;
            continue;
        }
        if (p->i >= p->n) break;
        char e = p->s[p->i++];
        unsigned cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!hex4(p, &cp)) goto bad;
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') goto bad;
                p->i += 2;
                if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                goto bad;
            }
            break;
        default: goto bad;
        }
        put_utf8(&buf, &len, &cap, cp);
        if (len + 2 >= cap) { cap *= 2; buf = xrealloc(buf, cap); }
    }
bad:
    free(buf);
    fail(p, "bad string");
    return NULL;
}

static jvalue *parse_value(parser *p, int depth);

static int literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->i + n <= p->n && memcmp(p->s + p->i, word, n) == 0) {
        p->i += n;
        return 1;
    }
    return 0;
}

static jvalue *parse_number(parser *p) {
    size_t start = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n) { fail(p, "bad number"); return NULL; }
    if (p->s[p->i] == '0') p->i++;
    else if (p->s[p->i] >= '1' && p->s[p->i] <= '9') while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    else { fail(p, "bad number"); return NULL; }
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        size_t d = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (d == p->i) { fail(p, "bad fraction"); return NULL; }
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        size_t d = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (d == p->i) { fail(p, "bad exponent"); return NULL; }
    }
    jvalue *v = json_new(J_NUMBER);
    v->text = xstrndup(p->s + start, p->i - start);
    v->num = strtod(v->text, NULL);
    return v;
}

static jvalue *parse_value(parser *p, int depth) {
    if (depth > MAX_PARSE_DEPTH) { fail(p, "too deep"); return NULL; }
    skip_ws(p);
    if (p->i >= p->n) { fail(p, "unexpected end"); return NULL; }
    char c = p->s[p->i];
    if (c == 'n') { if (literal(p, "null")) return json_new(J_NULL); }
    else if (c == 't') { if (literal(p, "true")) return json_new(J_TRUE); }
    else if (c == 'f') { if (literal(p, "false")) return json_new(J_FALSE); }
    else if (c == '"') {
        p->i++;
        size_t len;
        char *s = parse_string_body(p, &len);
        if (!s) return NULL;
        jvalue *v = json_new(J_STRING);
        v->text = s;
        v->len = len;
        return v;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        return parse_number(p);
    } else if (c == '[') {
        p->i++;
        jvalue *a = json_new(J_ARRAY);
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ']') { p->i++; return a; }
        for (;;) {
            jvalue *item = parse_value(p, depth + 1);
            if (!item) { json_free(a); return NULL; }
            json_push(a, item);
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
            if (p->i < p->n && p->s[p->i] == ']') { p->i++; return a; }
            fail(p, "expected , or ]");
            json_free(a);
            return NULL;
        }
    } else if (c == '{') {
        p->i++;
        jvalue *o = json_new(J_OBJECT);
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == '}') { p->i++; return o; }
        for (;;) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') { fail(p, "expected a member name"); json_free(o); return NULL; }
            p->i++;
            size_t klen;
            char *key = parse_string_body(p, &klen);
            if (!key) { json_free(o); return NULL; }
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { fail(p, "expected :"); free(key); json_free(o); return NULL; }
            p->i++;
            jvalue *val = parse_value(p, depth + 1);
            if (!val) { free(key); json_free(o); return NULL; }
            json_set(o, key, val);
            free(key);
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
            if (p->i < p->n && p->s[p->i] == '}') { p->i++; return o; }
            fail(p, "expected , or }");
            json_free(o);
            return NULL;
        }
    }
    fail(p, "unexpected character");
    return NULL;
}

jvalue *json_parse(const char *text, size_t len, char *err, size_t errlen) {
    parser p = {text, 0, len, err, errlen, 0};
    jvalue *v = parse_value(&p, 1);
    if (!v) return NULL;
    skip_ws(&p);
    if (p.i != p.n) {
        fail(&p, "trailing characters");
        json_free(v);
        return NULL;
    }
    return v;
}

jvalue *json_parse_or_die(const char *text) {
    char err[200];
    jvalue *v = json_parse(text, strlen(text), err, sizeof err);
    if (!v) {
        fprintf(stderr, "invalid JSON (%s): %.300s\n", err, text);
        abort();
    }
    return v;
}

/* ---- writing ---- */

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap) b->cap = b->cap * 2 + 64;
        b->buf = xrealloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"') sb_put(b, "\\\"", 2);
        else if (c == '\\') sb_put(b, "\\\\", 2);
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else sb_put(b, (const char *)&s[i], 1);
    }
    sb_put(b, "\"", 1);
}

static void dump(sbuf *b, const jvalue *v) {
    switch (v->type) {
    case J_NULL: sb_put(b, "null", 4); break;
    case J_TRUE: sb_put(b, "true", 4); break;
    case J_FALSE: sb_put(b, "false", 5); break;
    case J_NUMBER: sb_put(b, v->text, strlen(v->text)); break;
    case J_STRING: sb_str(b, v->text, v->len); break;
    case J_ARRAY:
        sb_put(b, "[", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i) sb_put(b, ",", 1);
            dump(b, v->items[i]);
        }
        sb_put(b, "]", 1);
        break;
    case J_OBJECT:
        sb_put(b, "{", 1);
        for (size_t i = 0; i < v->n; i++) {
            if (i) sb_put(b, ",", 1);
            sb_str(b, v->keys[i], strlen(v->keys[i]));
            sb_put(b, ":", 1);
            dump(b, v->items[i]);
        }
        sb_put(b, "}", 1);
        break;
    }
}

char *json_dump(const jvalue *v) {
    sbuf b = {NULL, 0, 0};
    sb_put(&b, "", 0);
    dump(&b, v);
    return b.buf;
}

/* ---- access and equality ---- */

int json_is(const jvalue *v, jtype t) { return v && v->type == t; }

jvalue *json_get(const jvalue *object, const char *key) {
    if (!json_is(object, J_OBJECT)) return NULL;
    long i = find_key(object, key);
    return i < 0 ? NULL : object->items[i];
}

const char *json_string(const jvalue *v) { return json_is(v, J_STRING) ? v->text : NULL; }

int json_equal(const jvalue *a, const jvalue *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case J_NULL: case J_TRUE: case J_FALSE: return 1;
    case J_NUMBER: return a->num == b->num;
    case J_STRING: return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
    case J_ARRAY:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++)
            if (!json_equal(a->items[i], b->items[i])) return 0;
        return 1;
    case J_OBJECT:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++) {
            jvalue *other = json_get(b, a->keys[i]);
            if (!other || !json_equal(a->items[i], other)) return 0;
        }
        return 1;
    }
    return 0;
}

/* ---- RFC 6901 pointers and RFC 6902 patches ---- */

/* Splits a pointer into unescaped tokens; returns the count or -1 (malformed). */
static int split_pointer(const char *ptr, char ***out) {
    *out = NULL;
    if (*ptr == 0) return 0;
    if (*ptr != '/') return -1;
    int n = 0;
    char **tokens = NULL;
    const char *s = ptr + 1;
    for (;;) {
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char *t = xmalloc(len + 1);
        size_t k = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '~') {
                if (i + 1 < len && s[i + 1] == '0') t[k++] = '~';
                else if (i + 1 < len && s[i + 1] == '1') t[k++] = '/';
                else {
                    free(t);
                    for (int j = 0; j < n; j++) free(tokens[j]);
                    free(tokens);
                    return -1;
                }
                i++;
            } else t[k++] = s[i];
        }
        t[k] = 0;
        tokens = xrealloc(tokens, (size_t)(n + 1) * sizeof *tokens);
        tokens[n++] = t;
        if (!end) break;
        s = end + 1;
    }
    *out = tokens;
    return n;
}

static void free_tokens(char **t, int n) {
    for (int i = 0; i < n; i++) free(t[i]);
    free(t);
}

/* An array index token: digits without a leading zero; -1 if not one. */
static long index_of(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || (n > 1 && t[0] == '0')) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < '0' || t[i] > '9' || v > 100000000) return -1;
        v = v * 10 + (t[i] - '0');
    }
    return v;
}

static jvalue *child(jvalue *v, const char *token) {
    if (json_is(v, J_OBJECT)) return json_get(v, token);
    if (json_is(v, J_ARRAY)) {
        long i = index_of(token);
        return (i >= 0 && (size_t)i < v->n) ? v->items[i] : NULL;
    }
    return NULL;
}

jvalue *json_pointer(jvalue *doc, const char *pointer) {
    char **t;
    int n = split_pointer(pointer, &t);
    if (n < 0) return NULL;
    jvalue *v = doc;
    for (int i = 0; i < n && v; i++) v = child(v, t[i]);
    free_tokens(t, n);
    return v;
}

/* Removes and returns the value at `pointer` (not the root); NULL if absent. */
static jvalue *take(jvalue *doc, const char *pointer) {
    char **t;
    int n = split_pointer(pointer, &t);
    if (n <= 0) { free_tokens(t, n < 0 ? 0 : n); return NULL; }
    jvalue *parent = doc;
    for (int i = 0; i < n - 1 && parent; i++) parent = child(parent, t[i]);
    jvalue *out = NULL;
    const char *last = t[n - 1];
    if (json_is(parent, J_OBJECT)) {
        long i = find_key(parent, last);
        if (i >= 0) {
            out = parent->items[i];
            free(parent->keys[i]);
            memmove(parent->items + i, parent->items + i + 1, (parent->n - (size_t)i - 1) * sizeof *parent->items);
            memmove(parent->keys + i, parent->keys + i + 1, (parent->n - (size_t)i - 1) * sizeof *parent->keys);
            parent->n--;
        }
    } else if (json_is(parent, J_ARRAY)) {
        long i = index_of(last);
        if (i >= 0 && (size_t)i < parent->n) {
            out = parent->items[i];
            memmove(parent->items + i, parent->items + i + 1, (parent->n - (size_t)i - 1) * sizeof *parent->items);
            parent->n--;
        }
    }
    free_tokens(t, n);
    return out;
}

/* Adds `value` at `pointer` (RFC 6902 add); takes ownership on success. */
static int put(jvalue **doc, const char *pointer, jvalue *value, int replace_only) {
    char **t;
    int n = split_pointer(pointer, &t);
    if (n < 0) return -1;
    if (n == 0) {
        json_free(*doc);
        *doc = value;
        return 0;
    }
    jvalue *parent = *doc;
    for (int i = 0; i < n - 1 && parent; i++) parent = child(parent, t[i]);
    int rc = -1;
    const char *last = t[n - 1];
    if (json_is(parent, J_OBJECT)) {
        if (!replace_only || find_key(parent, last) >= 0) {
            json_set(parent, last, value);
            rc = 0;
        }
    } else if (json_is(parent, J_ARRAY)) {
        long i = strcmp(last, "-") == 0 && !replace_only ? (long)parent->n : index_of(last);
        if (replace_only && i >= 0 && (size_t)i < parent->n) {
            json_free(parent->items[i]);
            parent->items[i] = value;
            rc = 0;
        } else if (!replace_only && i >= 0 && (size_t)i <= parent->n) {
            json_push(parent, value);
            memmove(parent->items + i + 1, parent->items + i, (parent->n - 1 - (size_t)i) * sizeof *parent->items);
            parent->items[i] = value;
            rc = 0;
        }
    }
    free_tokens(t, n);
    return rc;
}

static int apply_op(jvalue **doc, const jvalue *op, char *err, size_t errlen) {
    const char *name = json_string(json_get(op, "op"));
    const char *path = json_string(json_get(op, "path"));
    const jvalue *value = json_get(op, "value");
    const char *from = json_string(json_get(op, "from"));
    if (!name || !path) { seterr(err, errlen, "operation without op or path"); return -1; }
    if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
        if (!value) { seterr(err, errlen, "%s without value", name); return -1; }
        jvalue *v = json_clone(value);
        if (put(doc, path, v, strcmp(name, "replace") == 0) != 0) {
            json_free(v);
            seterr(err, errlen, "%s: no target at %s", name, path);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "remove") == 0) {
        if (*path == 0) { seterr(err, errlen, "remove of the root"); return -1; }
        jvalue *v = take(*doc, path);
        if (!v) { seterr(err, errlen, "remove: nothing at %s", path); return -1; }
        json_free(v);
        return 0;
    }
    if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
        if (!from) { seterr(err, errlen, "%s without from", name); return -1; }
        jvalue *v;
        if (strcmp(name, "copy") == 0) {
            jvalue *src = json_pointer(*doc, from);
            v = src ? json_clone(src) : NULL;
        } else {
            size_t fl = strlen(from);
            if (strncmp(path, from, fl) == 0 && path[fl] == '/') { seterr(err, errlen, "move into itself"); return -1; }
            if (strcmp(path, from) == 0) return 0;
            v = *from == 0 ? NULL : take(*doc, from);
        }
        if (!v) { seterr(err, errlen, "%s: nothing at %s", name, from); return -1; }
        if (put(doc, path, v, 0) != 0) {
            json_free(v);
            seterr(err, errlen, "%s: no target at %s", name, path);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "test") == 0) {
        jvalue *target = json_pointer(*doc, path);
        if (!value || !target || !json_equal(target, value)) { seterr(err, errlen, "test failed at %s", path); return -1; }
        return 0;
    }
    seterr(err, errlen, "unknown op %s", name);
    return -1;
}

int json_patch(jvalue **doc, const jvalue *ops, char *err, size_t errlen) {
    if (!json_is(ops, J_ARRAY)) { seterr(err, errlen, "the patch is not an array"); return -1; }
    jvalue *work = json_clone(*doc);
    for (size_t i = 0; i < ops->n; i++) {
        if (apply_op(&work, ops->items[i], err, errlen) != 0) {
            json_free(work);
            return -1;
        }
    }
    json_free(*doc);
    *doc = work;
    return 0;
}
