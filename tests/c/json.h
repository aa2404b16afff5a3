/* A small JSON value type with a parser, a compact writer, structural equality and an RFC 6902
 * patch applier, written for the C tests so that they check livecache's events with an
 * implementation independent of the engine's. */
#ifndef LIVECACHE_TEST_JSON_H
#define LIVECACHE_TEST_JSON_H

#include <stddef.h>

typedef enum { J_NULL, J_FALSE, J_TRUE, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } jtype;

typedef struct jvalue jvalue;
struct jvalue {
    jtype type;
    double num;      /* J_NUMBER: the value */
    char *text;      /* J_NUMBER: its source text (written back as is); J_STRING: UTF-8 bytes */
    size_t len;      /* J_STRING: byte length (the text may hold NUL) */
    size_t n, cap;   /* J_ARRAY / J_OBJECT: element count */
    jvalue **items;  /* elements / member values */
    char **keys;     /* J_OBJECT: member names (NUL-terminated UTF-8) */
};

/* Parses `len` bytes of JSON text; NULL on error with a message in `err` (if given). */
jvalue *json_parse(const char *text, size_t len, char *err, size_t errlen);
/* json_parse of a NUL-terminated string; aborts the test program on invalid text. */
jvalue *json_parse_or_die(const char *text);
void json_free(jvalue *v);
jvalue *json_clone(const jvalue *v);
/* Structural equality: objects ignore member order, numbers compare by value. */
int json_equal(const jvalue *a, const jvalue *b);
/* Compact JSON text, malloc'd (release with free()). */
char *json_dump(const jvalue *v);

jvalue *json_get(const jvalue *object, const char *key);  /* member or NULL */
const char *json_string(const jvalue *v);                 /* the string's text, or NULL */
int json_is(const jvalue *v, jtype t);

jvalue *json_new(jtype t);
jvalue *json_new_string(const char *s);
void json_push(jvalue *array, jvalue *item);              /* takes ownership */
void json_set(jvalue *object, const char *key, jvalue *value); /* takes ownership; replaces */

/* The value at an RFC 6901 JSON Pointer, or NULL. */
jvalue *json_pointer(jvalue *doc, const char *pointer);
/* Applies an RFC 6902 operation array to *doc, all or nothing. 0 on success, else -1 with a
 * message in `err`. */
int json_patch(jvalue **doc, const jvalue *ops, char *err, size_t errlen);

#endif
