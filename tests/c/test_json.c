/* The tests' own RFC 6902 implementation (json.c) against the standard json-patch test suite,
 * so the independent checker the other C tests rely on is itself checked.
 *
 * usage: test_json SUITE_DIR   (the folder holding tests.json and spec_tests.json) */
#include <stdlib.h>

#include "support.h"

static jvalue *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    size_t got = fread(text, 1, (size_t)size, f);
    fclose(f);
    char err[200];
    jvalue *v = json_parse(text, got, err, sizeof err);
    if (!v) fprintf(stderr, "%s: %s\n", path, err);
    free(text);
    return v;
}

static void run_file(const char *dir, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    jvalue *tests = read_json(path);
    if (!tests) {
        count_case(file, 1);
        return;
    }
    int failed = 0, ran = 0;
    for (size_t i = 0; i < tests->n; i++) {
        const jvalue *t = tests->items[i];
        if (json_get(t, "disabled") && json_is(json_get(t, "disabled"), J_TRUE)) continue;
        const jvalue *doc = json_get(t, "doc"), *patch = json_get(t, "patch");
        if (!doc || !patch) continue;
        const jvalue *expected = json_get(t, "expected");
        int must_fail = json_get(t, "error") != NULL;
        jvalue *work = json_clone(doc);
        char err[200];
        int rc = json_patch(&work, patch, err, sizeof err);
        const char *comment = json_string(json_get(t, "comment"));
        ran++;
        if (must_fail && rc == 0) {
            failed++;
            fprintf(stderr, "  %s #%zu (%s): applied but should fail\n", file, i, comment ? comment : "");
        } else if (!must_fail && rc != 0) {
            failed++;
            fprintf(stderr, "  %s #%zu (%s): %s\n", file, i, comment ? comment : "", err);
        } else if (!must_fail && expected && !json_equal(work, expected)) {
            failed++;
            char *got = json_dump(work);
            fprintf(stderr, "  %s #%zu (%s): got %s\n", file, i, comment ? comment : "", got);
            free(got);
        }
        json_free(work);
    }
    json_free(tests);
    printf("# %s: %d tests, %d failed\n", file, ran, failed);
    count_case(file, failed != 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SUITE_DIR\n", argv[0]);
        return 2;
    }
    run_file(argv[1], "tests.json");
    run_file(argv[1], "spec_tests.json");
    return finish();
}
