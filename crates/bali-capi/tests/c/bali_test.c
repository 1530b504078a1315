/* C test of the BALI ABI: fit, predict, read posteriors, save, load, resume, stream, and every
 * error path. Prints the bits of every number it computes (one "key hex" line each), so
 * that CI can diff them against the Rust library's own figures on the same data and seeds
 * (crates/bali-capi/examples/c_reference.rs). Exit code 0 when every check holds.
 *
 *   cc -std=c11 -I crates/bali-capi/include bali_test.c target/release/libbali_capi.a \
 *      -lm -lpthread -ldl -o bali_c_test
 *   ./bali_c_test /tmp/model.safetensors
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bali.h"

#define N 64
#define D 3
#define ROWS 5
#define SAMPLES 16

static int failures = 0;

#define CHECK(cond, what)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "FAILED: %s (line %d): %s\n", what, __LINE__, bali_last_error()); \
            failures++;                                                                \
        }                                                                              \
    } while (0)

static void print_bits(const char *key, size_t i, double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    printf("%s[%zu] %016llx\n", key, i, (unsigned long long)u);
}

static void data(double *x, double *y) {
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++) {
            x[i * D + j] = sin(0.37 * i + 1.1 * j);
        }
        y[i] = x[i * D] - 0.5 * x[i * D + 1] * x[i * D + 2] + 0.1 * cos(1.7 * i);
    }
}

static int steps_seen = 0;
static int count_steps(uint64_t step, double batch_loss, void *user_data) {
    (void)user_data;
    steps_seen++;
    CHECK(step == (uint64_t)steps_seen && isfinite(batch_loss), "progress callback");
    return 0;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "bali_c_test.safetensors";
    double x[N * D], y[N];
    data(x, y);

    /* Fit in mini-batches of 16 with a progress callback. */
    BaliModel *model = NULL;
    const char *options =
        "{\"dims\": [3, 8, 1], \"seed\": 7, \"config\": {\"wd\": 1.0, \"batch_size\": 16}}";
    CHECK(bali_model_new(options, &model) == BALI_STATUS_OK, "model_new");
    double mean[ROWS], var[ROWS];
    CHECK(bali_predict(model, x, ROWS, SAMPLES, 3, mean, var) == BALI_STATUS_OUT_OF_ORDER,
          "predict before fit");
    CHECK(strlen(bali_last_error()) > 0, "last error after a failure");
    CHECK(bali_fit(model, x, y, N, 30, count_steps, NULL) == BALI_STATUS_OK, "fit");
    CHECK(steps_seen == 30, "30 progress calls");
    CHECK(strlen(bali_last_error()) == 0, "no error after a success");
    CHECK(bali_predict(model, x, ROWS, SAMPLES, 3, mean, var) == BALI_STATUS_OK, "predict");
    for (size_t i = 0; i < ROWS; i++) {
        print_bits("fit.mean", i, mean[i]);
        print_bits("fit.variance", i, var[i]);
        CHECK(var[i] > 0.0, "positive variance");
    }
    size_t layers = 0;
    CHECK(bali_num_layers(model, &layers) == BALI_STATUS_OK && layers == 2, "num_layers");
    double m0[4 * 8], lambda0[4 * 4], sigma0[8 * 8], m1[9 * 1];
    CHECK(bali_layer_posterior(model, 0, m0, lambda0, sigma0) == BALI_STATUS_OK, "layer 0");
    CHECK(bali_layer_posterior(model, 1, m1, NULL, NULL) == BALI_STATUS_OK, "layer 1 mean");
    for (size_t i = 0; i < 4 * 8; i++) print_bits("layer0.mean", i, m0[i]);
    for (size_t i = 0; i < 4 * 4; i++) print_bits("layer0.row_precision", i, lambda0[i]);
    for (size_t i = 0; i < 8 * 8; i++) print_bits("layer0.col_cov", i, sigma0[i]);
    for (size_t i = 0; i < 9; i++) print_bits("layer1.mean", i, m1[i]);
    CHECK(bali_layer_posterior(model, 2, m0, NULL, NULL) == BALI_STATUS_INVALID_ARGUMENT,
          "layer out of range");

    /* Save, load, and predict the same bits. */
    CHECK(bali_save(model, path) == BALI_STATUS_OK, "save");
    BaliModel *loaded = NULL;
    CHECK(bali_load(path, &loaded) == BALI_STATUS_OK, "load");
    double mean2[ROWS], var2[ROWS];
    CHECK(bali_predict(loaded, x, ROWS, SAMPLES, 3, mean2, var2) == BALI_STATUS_OK,
          "predict after load");
    CHECK(memcmp(mean, mean2, sizeof mean) == 0 && memcmp(var, var2, sizeof var) == 0,
          "predictions equal bit for bit after the round trip");
    /* Resume: 10 more steps on the loaded model equal 10 more on the original (40 in all),
     * mid-epoch (30 steps of 4 batches per epoch). */
    CHECK(bali_fit(loaded, x, y, N, 10, NULL, NULL) == BALI_STATUS_OK, "fit after load");
    CHECK(bali_fit(model, x, y, N, 10, NULL, NULL) == BALI_STATUS_OK, "fit further");
    double mean3[ROWS], var3[ROWS];
    CHECK(bali_predict(loaded, x, ROWS, SAMPLES, 3, mean2, var2) == BALI_STATUS_OK &&
              bali_predict(model, x, ROWS, SAMPLES, 3, mean3, var3) == BALI_STATUS_OK,
          "predict after resuming");
    CHECK(memcmp(mean3, mean2, sizeof mean) == 0 && memcmp(var3, var2, sizeof var) == 0,
          "resuming from the file equals never stopping, bit for bit");
    for (size_t i = 0; i < ROWS; i++) {
        print_bits("resume.mean", i, mean2[i]);
        print_bits("resume.variance", i, var2[i]);
    }
    bali_model_free(loaded);

    /* Streaming: two partial_fit steps on 16 rows of a 64-row training set. */
    BaliModel *stream = NULL;
    CHECK(bali_model_new("{\"dims\": [3, 8, 1], \"seed\": 7, \"n_train\": 64}", &stream) ==
              BALI_STATUS_OK,
          "model_new (stream)");
    CHECK(bali_partial_fit(stream, x, y, 16) == BALI_STATUS_OK, "partial_fit 1");
    CHECK(bali_partial_fit(stream, x + 16 * D, y + 16, 16) == BALI_STATUS_OK, "partial_fit 2");
    CHECK(bali_predict(stream, x, ROWS, SAMPLES, 3, mean2, var2) == BALI_STATUS_OK,
          "predict (stream)");
    for (size_t i = 0; i < ROWS; i++) {
        print_bits("stream.mean", i, mean2[i]);
        print_bits("stream.variance", i, var2[i]);
    }
    bali_model_free(stream);

    /* Classification: one-hot targets of 3 classes, class probabilities. */
    BaliModel *classes = NULL;
    const char *class_options =
        "{\"dims\": [3, 8, 3], \"seed\": 5, \"config\": {\"likelihood\": \"categorical\", "
        "\"alpha_hidden\": 0.1, \"gamma\": 0.1, \"floor\": 0.3, \"wd\": 100}}";
    CHECK(bali_model_new(class_options, &classes) == BALI_STATUS_OK, "model_new (classes)");
    double onehot[N * 3];
    for (int i = 0; i < N; i++) {
        int c = x[i * D] > 0.3 ? 2 : (x[i * D + 1] > 0.0 ? 1 : 0);
        for (int k = 0; k < 3; k++) onehot[i * 3 + k] = (k == c) ? 1.0 : 0.0;
    }
    CHECK(bali_fit(classes, x, onehot, N, 20, NULL, NULL) == BALI_STATUS_OK, "fit (classes)");
    double probs[ROWS * 3];
    CHECK(bali_predict_proba(classes, x, ROWS, SAMPLES, 3, probs) == BALI_STATUS_OK,
          "predict_proba");
    for (size_t i = 0; i < ROWS; i++) {
        double sum = probs[i * 3] + probs[i * 3 + 1] + probs[i * 3 + 2];
        CHECK(fabs(sum - 1.0) < 1e-12, "probabilities sum to 1");
    }
    for (size_t i = 0; i < ROWS * 3; i++) print_bits("classify.probs", i, probs[i]);
    CHECK(bali_predict(classes, x, ROWS, SAMPLES, 3, mean2, var2) ==
              BALI_STATUS_INVALID_ARGUMENT,
          "mean and variance of a classifier");
    CHECK(bali_predict_proba(model, x, ROWS, SAMPLES, 3, probs) == BALI_STATUS_INVALID_ARGUMENT,
          "class probabilities of a regression model");
    bali_model_free(classes);

    /* Error paths: each a status code and a message, never a crash. */
    BaliModel *bad = NULL;
    CHECK(bali_model_new("{not json", &bad) == BALI_STATUS_INVALID_ARGUMENT && bad == NULL,
          "bad JSON");
    CHECK(bali_model_new("{\"dims\": [3, 8, 1], \"config\": {\"alfa\": 1}}", &bad) ==
              BALI_STATUS_INVALID_ARGUMENT,
          "unknown option");
    CHECK(strstr(bali_last_error(), "alfa") != NULL, "message names the option");
    CHECK(bali_model_new("{\"dims\": [3, 8, 1], \"config\": {\"gamma\": -1}}", &bad) ==
              BALI_STATUS_INVALID_ARGUMENT,
          "option out of range");
    CHECK(bali_model_new(NULL, &bad) == BALI_STATUS_NULL_POINTER, "NULL options");
    CHECK(bali_model_new(options, NULL) == BALI_STATUS_NULL_POINTER, "NULL out");
    CHECK(bali_fit(NULL, x, y, N, 1, NULL, NULL) == BALI_STATUS_NULL_POINTER, "NULL model");
    CHECK(bali_fit(model, NULL, y, N, 1, NULL, NULL) == BALI_STATUS_NULL_POINTER, "NULL x");
    double x_nan[N * D];
    memcpy(x_nan, x, sizeof x);
    x_nan[7] = NAN;
    CHECK(bali_fit(model, x_nan, y, N, 1, NULL, NULL) == BALI_STATUS_NON_FINITE, "NaN input");
    x_nan[7] = INFINITY;
    CHECK(bali_predict(model, x_nan, N, 4, 0, NULL, NULL) == BALI_STATUS_NULL_POINTER,
          "NULL outputs");
    double big_mean[N], big_var[N];
    CHECK(bali_predict(model, x_nan, N, 4, 0, big_mean, big_var) == BALI_STATUS_NON_FINITE,
          "infinite input");
    CHECK(bali_predict(model, x, ROWS, 0, 0, mean2, var2) == BALI_STATUS_INVALID_ARGUMENT,
          "zero samples");
    CHECK(bali_fit(model, x, y, 3, 1, NULL, NULL) == BALI_STATUS_INVALID_ARGUMENT,
          "fit on other rows than the trainer's");
    CHECK(bali_load("/nonexistent/dir/model.safetensors", &bad) == BALI_STATUS_IO,
          "missing file");
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("not a model file", f);
        fclose(f);
    }
    CHECK(bali_load(path, &bad) == BALI_STATUS_BAD_FILE, "corrupted file");
    remove(path);
    bali_model_free(NULL);
    bali_model_free(model);

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    fprintf(stderr, "all C ABI checks passed\n");
    return 0;
}
