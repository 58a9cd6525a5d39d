/* The field sample's walk over a decoded event, and its quick yes for the leaves of typed ECS
 * fields: the compiled twins of dataset._walk_noting and dataset._misfits' quick accepts
 * (which stay the fallback where this module was not built, and for anything else).
 *
 * walk(doc, arrays, odd) returns the event flattened ({dotted path: [leaves]}, nulls dropped,
 * an array's items under the array's own path), adding to `arrays` the paths holding a JSON
 * array and to `odd` those of leaves that are not str. It returns None, having maybe added
 * paths to the two sets that the Python walk adds as well, when it meets anything else than
 * dict, list, str keys and scalar leaves of exact types, or nesting deeper than MAX_NEST: the
 * caller then walks in Python, which gives the same result for every input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <string.h>

#define MAX_NEST 600

/* Dotted paths already built, {prefix: {key: path}}: events repeat their paths, and a path
 * found here has its hash computed already. Cleared when it grows past MAX_PATHS. */
#define MAX_PATHS 50000
static PyObject *path_cache = NULL;
static Py_ssize_t cached_paths = 0;

/* A new reference to "prefix.key", or NULL with a Python error. */
static PyObject *
dotted(PyObject *prefix, PyObject *key)
{
    PyObject *known = PyDict_GetItemWithError(path_cache, prefix);
    if (known != NULL) {
        PyObject *path = PyDict_GetItemWithError(known, key);
        if (path != NULL) {
            Py_INCREF(path);
            return path;
        }
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *path = PyUnicode_FromFormat("%U.%U", prefix, key);
    if (path == NULL)
        return NULL;
    if (cached_paths >= MAX_PATHS) {
        PyDict_Clear(path_cache);
        cached_paths = 0;
        known = NULL;
    }
    if (known == NULL) {
        known = PyDict_New();
        if (known == NULL || PyDict_SetItem(path_cache, prefix, known) < 0) {
            Py_XDECREF(known);
            Py_DECREF(path);
            return NULL;
        }
        Py_DECREF(known); /* path_cache holds it */
    }
    if (PyDict_SetItem(known, key, path) < 0) {
        Py_DECREF(path);
        return NULL;
    }
    cached_paths++;
    return path;
}

/* 0: done; -1: a Python error; -2: hand the event to the Python walk. */
static int walk_value(PyObject *value, PyObject *prefix, PyObject *out, PyObject *arrays,
                      PyObject *odd, int nest);

static int
add_leaf(PyObject *path, PyObject *item, PyObject *out, PyObject *odd)
{
    if (item == Py_None || PyUnicode_GET_LENGTH(path) == 0)
        return 0;
    if (!PyUnicode_CheckExact(item)) {
        if (!(PyLong_CheckExact(item) || PyFloat_CheckExact(item) || PyBool_Check(item)))
            return -2;
        if (PySet_Add(odd, path) < 0)
            return -1;
    }
    PyObject *leaves = PyDict_GetItemWithError(out, path);
    if (leaves != NULL)
        return PyList_Append(leaves, item);
    if (PyErr_Occurred())
        return -1;
    leaves = PyList_New(1);
    if (leaves == NULL)
        return -1;
    Py_INCREF(item);
    PyList_SET_ITEM(leaves, 0, item);
    int rc = PyDict_SetItem(out, path, leaves);
    Py_DECREF(leaves);
    return rc;
}

static int
walk_value(PyObject *value, PyObject *prefix, PyObject *out, PyObject *arrays, PyObject *odd,
           int nest)
{
    if (nest > MAX_NEST)
        return -2;
    if (PyDict_CheckExact(value)) {
        PyObject *key, *item;
        Py_ssize_t pos = 0;
        int top = PyUnicode_GET_LENGTH(prefix) == 0;
        while (PyDict_Next(value, &pos, &key, &item)) {
            if (!PyUnicode_CheckExact(key))
                return -2;
            PyObject *path;
            if (top) {
                path = key;
                Py_INCREF(path);
            } else {
                path = dotted(prefix, key);
                if (path == NULL)
                    return -1;
            }
            int rc;
            if (PyDict_CheckExact(item) || PyList_CheckExact(item))
                rc = walk_value(item, path, out, arrays, odd, nest + 1);
            else if (PyDict_Check(item) || PyList_Check(item))
                rc = -2;
            else
                rc = add_leaf(path, item, out, odd);
            Py_DECREF(path);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (PyList_CheckExact(value)) {
        if (PySet_Add(arrays, prefix) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            PyObject *item = PyList_GET_ITEM(value, i);
            int rc;
            if (PyDict_CheckExact(item) || PyList_CheckExact(item))
                rc = walk_value(item, prefix, out, arrays, odd, nest + 1);
            else if (PyDict_Check(item) || PyList_Check(item))
                rc = -2;
            else
                rc = add_leaf(prefix, item, out, odd);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    return -2;
}

static PyObject *
walk(PyObject *self, PyObject *args)
{
    PyObject *doc, *arrays, *odd;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyDict_Type, &doc, &PySet_Type, &arrays, &PySet_Type,
                          &odd))
        return NULL;
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    PyObject *empty = PyUnicode_FromStringAndSize("", 0);
    if (empty == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    int rc = walk_value(doc, empty, out, arrays, odd, 0);
    Py_DECREF(empty);
    if (rc == 0)
        return out;
    Py_DECREF(out);
    if (rc == -1)
        return NULL;
    Py_RETURN_NONE;
}

/* doubtful(flat, kinds) -> [names]: the names of `flat` listed in `kinds` (name -> QUICK_*)
 * with a leaf the quick yes below does not take; the caller checks those (and only those) the
 * slow way. A quick yes is never wrong; anything unusual is doubtful. */
enum { QUICK_NONE = 0, QUICK_IP = 1, QUICK_DATE = 2, QUICK_INT = 3, QUICK_LONG = 4, QUICK_ULONG = 5 };

static int
digits(const char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static int
two(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

/* The dotted quad _PLAIN_IPV4 matches: four 0-255 without leading zeros. */
static int
plain_ipv4(const char *p, Py_ssize_t n)
{
    int parts = 0;
    Py_ssize_t i = 0;
    while (parts < 4) {
        Py_ssize_t start = i;
        int value = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && i - start < 3)
            value = value * 10 + (p[i++] - '0');
        Py_ssize_t len = i - start;
        if (len == 0 || (len > 1 && p[start] == '0') || value > 255)
            return 0;
        parts++;
        if (parts < 4) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
    }
    return i == n;
}

/* An IPv6 address in hex groups only, as the C library parses it (ipaddress agrees). */
static int
hex_ipv6(const char *p, Py_ssize_t n)
{
    char buf[40];
    unsigned char out[16];
    if (n < 2 || n > 39)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':'))
            return 0;
    }
    memcpy(buf, p, (size_t)n);
    buf[n] = '\0';
    return inet_pton(AF_INET6, buf, out) == 1;
}

/* An ISO UTC time, yyyy-MM-ddTHH:mm:ss[.f{1,9}]Z, on a real day of 1900-2199. */
static int
iso_utc(const char *p, Py_ssize_t n)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || n > 30 || p[n - 1] != 'Z')
        return 0;
    if (!(digits(p, 4) && p[4] == '-' && digits(p + 5, 2) && p[7] == '-' && digits(p + 8, 2) &&
          p[10] == 'T' && digits(p + 11, 2) && p[13] == ':' && digits(p + 14, 2) &&
          p[16] == ':' && digits(p + 17, 2)))
        return 0;
    if (n > 20) {
        if (p[19] != '.' || n - 21 < 1 || n - 21 > 9 || !digits(p + 20, n - 21))
            return 0;
    }
    int year = two(p) * 100 + two(p + 2), month = two(p + 5), day = two(p + 8);
    if (year < 1900 || year > 2199 || month < 1 || month > 12 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int last = days[month - 1] + (month == 2 && leap);
    return day <= last && two(p + 11) < 24 && two(p + 14) < 60 && two(p + 17) < 60;
}

static int
quick_yes(PyObject *v, long kind)
{
    if (PyUnicode_CheckExact(v)) {
        if (kind != QUICK_IP && kind != QUICK_DATE)
            return 0;
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(v, &n);
        if (p == NULL) {
            PyErr_Clear();
            return 0;
        }
        if (kind == QUICK_IP)
            return plain_ipv4(p, n) || hex_ipv6(p, n);
        return iso_utc(p, n);
    }
    if (PyLong_CheckExact(v)) {
        if (kind == QUICK_INT || kind == QUICK_LONG) {
            int overflow;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return 0;
            }
            return kind == QUICK_LONG || (x >= -2147483648LL && x <= 2147483647LL);
        }
        if (kind == QUICK_ULONG) {
            /* A negative int raises OverflowError here: no quick yes. */
            unsigned long long x = PyLong_AsUnsignedLongLong(v);
            if (x == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            return 1;
        }
    }
    return 0;
}

static PyObject *
doubtful(PyObject *self, PyObject *args)
{
    PyObject *flat, *kinds;
    if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &flat, &PyDict_Type, &kinds))
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    PyObject *name, *vals;
    Py_ssize_t pos = 0;
    while (PyDict_Next(flat, &pos, &name, &vals)) {
        PyObject *code = PyDict_GetItemWithError(kinds, name);
        if (code == NULL) {
            if (PyErr_Occurred())
                goto fail;
            continue;
        }
        long kind = PyLong_AsLong(code);
        if (kind == -1 && PyErr_Occurred())
            goto fail;
        int sure = PyList_CheckExact(vals);
        for (Py_ssize_t i = 0; sure && i < PyList_GET_SIZE(vals); i++)
            sure = quick_yes(PyList_GET_ITEM(vals, i), kind);
        if (!sure && PyList_Append(out, name) < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"doubtful", doubtful, METH_VARARGS,
     "doubtful(flat, kinds) -> names whose leaves the quick yes does not all take."},
    {"walk", walk, METH_VARARGS,
     "walk(doc, arrays, odd) -> flattened event, or None for the Python walk to take it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__walk(void)
{
    path_cache = PyDict_New();
    if (path_cache == NULL)
        return NULL;
    return PyModule_Create(&module);
}
