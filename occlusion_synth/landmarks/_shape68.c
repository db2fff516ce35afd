/* dlib's 68-point shape predictor (Kazemi & Sullivan's cascade of regression trees), evaluated
 * on a compact copy of its model: every level's 8,000 leaf vectors in one contiguous block of
 * int16 (one scale per level) instead of 8,000 separately allocated float vectors.
 *
 * A call reads one leaf of each of the 500 trees of every level. In dlib each leaf is 544 bytes
 * somewhere in a 99 MB heap and the reads come one after another, so a call waits on memory
 * most of the time; here a leaf is 272 bytes of one block, all 500 leaves of a level are known
 * before any is summed (each read is issued 16 trees ahead of its sum), and the sums are exact
 * integer additions: 0.33-0.45 ms per call on a 100 px face where dlib's takes 0.9-1.4 ms (same
 * process, 10 levels; a float32 copy of the leaves, bit-exact with dlib, took 0.58-0.75 ms). Features, splits and the similarity transform follow dlib's
 * shape_predictor::operator() (dlib/image_processing/shape_predictor.h): the same pixels are
 * compared with the same thresholds, so a tree picks the same leaf unless a point lies within
 * rounding of a pixel edge. The only approximation is the 16-bit leaf values (error below 1e-3
 * pixel on a 100 px face); the points are returned unrounded (dlib rounds them to integers).
 *
 * Built as an optional extension (setup.py); without it the dlib predictor is used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define PARTS 68
#define DIMS (2 * PARTS)
#define MAX_FEATURES 4096
#define PREFETCH_AHEAD 16  /* trees; 4, 8 and 16 measured: 0.39, 0.38, 0.35 ms per call */

typedef struct {
    Py_buffer buf;
    int held;
} Buf;

static int get_buffer(PyObject *obj, Buf *b, Py_ssize_t need, const char *name) {
    if (PyObject_GetBuffer(obj, &b->buf, PyBUF_C_CONTIGUOUS) < 0) return -1;
    b->held = 1;
    if (b->buf.len < need) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, need %zd", name, b->buf.len, need);
        return -1;
    }
    return 0;
}

static void release(Buf *bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i].held) PyBuffer_Release(&bufs[i].buf);
}

/* predict(image, height, width, channels, left, top, right, bottom, levels, trees, features,
 *         depth, initial, anchors, deltas, splits, thresholds, leaves, scales) -> bytes
 *
 * image: uint8 (height, width, channels), channels 1 or 3 (RGB: intensity = (r + g + b) / 3 as
 * dlib's get_pixel_intensity); the box as dlib.rectangle(left, top, right, bottom).
 * Model (per level, C order): anchors int32 [features], deltas float32 [features][2],
 * splits int32 [trees][nodes][2], thresholds float32 [trees][nodes], leaves int16
 * [trees][nodes + 1][136], scales float32 [levels]; initial float32 [136]; nodes = 2^depth - 1.
 * Returns 136 float32 (x0, y0, x1, y1, ...) in image pixels. */
static PyObject *predict(PyObject *self, PyObject *args) {
    PyObject *o_img, *o_init, *o_anc, *o_dlt, *o_spl, *o_thr, *o_lvs, *o_scl;
    Py_ssize_t height, width, channels;
    double left, top, right, bottom;
    int levels, trees, features, depth;
    if (!PyArg_ParseTuple(args, "OnnnddddiiiiOOOOOOO", &o_img, &height, &width, &channels, &left, &top,
                          &right, &bottom, &levels, &trees, &features, &depth, &o_init, &o_anc, &o_dlt,
                          &o_spl, &o_thr, &o_lvs, &o_scl))
        return NULL;
    if (height < 1 || width < 1 || (channels != 1 && channels != 3) || levels < 0 || trees < 1 ||
        features < 1 || features > MAX_FEATURES || depth < 1 || depth > 8) {
        PyErr_SetString(PyExc_ValueError, "bad image or model dimensions");
        return NULL;
    }
    const int nodes = (1 << depth) - 1, leaves_per_tree = nodes + 1;
    Buf b[8];
    memset(b, 0, sizeof(b));
    if (get_buffer(o_img, &b[0], height * width * channels, "image") < 0 ||
        get_buffer(o_init, &b[1], DIMS * 4, "initial") < 0 ||
        get_buffer(o_anc, &b[2], (Py_ssize_t)levels * features * 4, "anchors") < 0 ||
        get_buffer(o_dlt, &b[3], (Py_ssize_t)levels * features * 8, "deltas") < 0 ||
        get_buffer(o_spl, &b[4], (Py_ssize_t)levels * trees * nodes * 8, "splits") < 0 ||
        get_buffer(o_thr, &b[5], (Py_ssize_t)levels * trees * nodes * 4, "thresholds") < 0 ||
        get_buffer(o_lvs, &b[6], (Py_ssize_t)levels * trees * leaves_per_tree * DIMS * 2, "leaves") < 0 ||
        get_buffer(o_scl, &b[7], (Py_ssize_t)levels * 4, "scales") < 0) {
        release(b, 8);
        return NULL;
    }
    const uint8_t *img = (const uint8_t *)b[0].buf.buf;
    const float *initial = (const float *)b[1].buf.buf;
    const int32_t *anchors = (const int32_t *)b[2].buf.buf;
    const float *deltas = (const float *)b[3].buf.buf;
    const int32_t *splits = (const int32_t *)b[4].buf.buf;
    const float *thresholds = (const float *)b[5].buf.buf;
    const int16_t *leaves = (const int16_t *)b[6].buf.buf;
    const float *scales = (const float *)b[7].buf.buf;

    float cur[DIMS];
    float vals[MAX_FEATURES];
    int32_t acc[DIMS];
    int chosen[4096];
    int bad_index = 0;
    if (trees > 4096) {
        release(b, 8);
        PyErr_SetString(PyExc_ValueError, "too many trees");
        return NULL;
    }
    /* the reference shape, centred, and its mean squared radius (dlib's find_similarity_transform) */
    double fx[PARTS], fy[PARTS], mfx = 0, mfy = 0, sigma_from = 0;
    for (int i = 0; i < PARTS; i++) { mfx += initial[2 * i]; mfy += initial[2 * i + 1]; }
    mfx /= PARTS; mfy /= PARTS;
    for (int i = 0; i < PARTS; i++) {
        fx[i] = initial[2 * i] - mfx; fy[i] = initial[2 * i + 1] - mfy;
        sigma_from += fx[i] * fx[i] + fy[i] * fy[i];
    }
    sigma_from /= PARTS;
    memcpy(cur, initial, sizeof(cur));
    const double sx = right - left, sy = bottom - top;

    Py_BEGIN_ALLOW_THREADS
    for (int lev = 0; lev < levels && !bad_index; lev++) {
        /* similarity taking the reference shape to the current one: for a proper rotation the
         * Umeyama solution is [[a, -b], [b, a]] with a, b from the cross-covariance */
        double mtx = 0, mty = 0, a = 0, bb = 0;
        for (int i = 0; i < PARTS; i++) { mtx += cur[2 * i]; mty += cur[2 * i + 1]; }
        mtx /= PARTS; mty /= PARTS;
        for (int i = 0; i < PARTS; i++) {
            double tx = cur[2 * i] - mtx, ty = cur[2 * i + 1] - mty;
            a += fx[i] * tx + fy[i] * ty;
            bb += fx[i] * ty - fy[i] * tx;
        }
        float ta = 1.0f, tb = 0.0f;
        if (sigma_from != 0) { ta = (float)(a / PARTS / sigma_from); tb = (float)(bb / PARTS / sigma_from); }
        const int32_t *anc = anchors + (size_t)lev * features;
        const float *dl = deltas + (size_t)lev * features * 2;
        for (int i = 0; i < features; i++) {
            int k = anc[i];
            if (k < 0 || k >= PARTS) { bad_index = 1; break; }
            float px = ta * dl[2 * i] - tb * dl[2 * i + 1] + cur[2 * k];
            float py = tb * dl[2 * i] + ta * dl[2 * i + 1] + cur[2 * k + 1];
            double x = floor(sx * (double)px + left + 0.5), y = floor(sy * (double)py + top + 0.5);
            if (x >= 0 && y >= 0 && x < (double)width && y < (double)height) {
                const uint8_t *p = img + ((size_t)y * width + (size_t)x) * channels;
                vals[i] = channels == 3 ? (float)(((unsigned)p[0] + p[1] + p[2]) / 3) : (float)p[0];
            } else {
                vals[i] = 0.0f;
            }
        }
        if (bad_index) break;
        /* every tree's leaf first, so the leaf reads can be issued ahead of the sums */
        const int32_t *spl = splits + (size_t)lev * trees * nodes * 2;
        const float *thr = thresholds + (size_t)lev * trees * nodes;
        const int16_t *lv = leaves + (size_t)lev * trees * leaves_per_tree * DIMS;
        for (int t = 0; t < trees; t++) {
            const int32_t *s = spl + (size_t)t * nodes * 2;
            const float *th = thr + (size_t)t * nodes;
            int n = 0;
            while (n < nodes) {
                int i1 = s[2 * n], i2 = s[2 * n + 1];
                if ((unsigned)i1 >= (unsigned)features || (unsigned)i2 >= (unsigned)features) { bad_index = 1; break; }
                n = (vals[i1] - vals[i2] > th[n]) ? 2 * n + 1 : 2 * n + 2;
            }
            if (bad_index) break;
            chosen[t] = n - nodes;
        }
        if (bad_index) break;
        /* sum the leaves, asking for the leaf PREFETCH_AHEAD trees on while adding this one: a
         * few reads in flight at a time (all 500 at once overflow the core's miss buffers and
         * ran 2x slower, measured) */
        memset(acc, 0, sizeof(acc));
        for (int t = 0; t < trees; t++) {
            if (t + PREFETCH_AHEAD < trees) {
                const char *next = (const char *)(lv + ((size_t)(t + PREFETCH_AHEAD) * leaves_per_tree +
                                                        chosen[t + PREFETCH_AHEAD]) * DIMS);
                for (int off = 0; off < DIMS * 2; off += 64) __builtin_prefetch(next + off);
            }
            const int16_t *leaf = lv + ((size_t)t * leaves_per_tree + chosen[t]) * DIMS;
            for (int d = 0; d < DIMS; d++) acc[d] += leaf[d];
        }
        const float scale = scales[lev];
        for (int d = 0; d < DIMS; d++) cur[d] += (float)acc[d] * scale;
    }
    Py_END_ALLOW_THREADS
    release(b, 8);
    if (bad_index) {
        PyErr_SetString(PyExc_ValueError, "model index out of range");
        return NULL;
    }
    float out[DIMS];
    for (int i = 0; i < PARTS; i++) {
        out[2 * i] = (float)(sx * (double)cur[2 * i] + left);
        out[2 * i + 1] = (float)(sy * (double)cur[2 * i + 1] + top);
    }
    return PyBytes_FromStringAndSize((const char *)out, sizeof(out));
}

static PyMethodDef methods[] = {
    {"predict", predict, METH_VARARGS, "68 points of one face (see the module source)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_shape68",
                                    "dlib's 68-point shape predictor on a compact model.", -1, methods};

/* ABI: the argument layout of predict(); Python uses the module only when it matches (a build
 * left over from an older source falls back to dlib instead of failing on every call) */
PyMODINIT_FUNC PyInit__shape68(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
