/* Opening brackets per line of an NDJSON buffer: the compiled twin of fast.no_deep_line's
 * bytes.translate count (which stays the fallback where this module was not built).
 *
 * opening_brackets(buf, carried, depth) counts '{' and '[' on each line of `buf`, the first
 * line continuing one that already had `carried` of them. It returns -2 at a line holding a
 * CR, a US byte (0x1f) or a byte that is not ASCII (the caller looks at such a buffer in
 * Python), -1 at a line with more than `depth`, else the count of the last line, which the
 * next buffer continues. It reads bytes only: strings are not told apart, so a count is an
 * upper bound of the nesting.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *
opening_brackets(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t carried, depth;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &carried, &depth))
        return NULL;
    const unsigned char *p = (const unsigned char *)view.buf;
    const unsigned char *end = p + view.len;
    Py_ssize_t count = carried;
    Py_ssize_t result;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        /* One line at a time: memchr finds its end at memory speed, the loop over it is a
         * branch-free sum the compiler vectorises. */
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        const unsigned char *stop = nl ? nl : end;
        Py_ssize_t n = 0;
        unsigned char odd = 0;
        for (const unsigned char *q = p; q < stop; q++) {
            n += (*q == '{') | (*q == '[');
            odd |= (*q == '\r') | (*q == 0x1f) | (*q >= 0x80);
        }
        count += n;
        if (odd) {
            count = -2;
            break;
        }
        if (count > depth) {
            count = -1;
            break;
        }
        if (!nl)
            break;
        p = nl + 1;
        count = 0;
    }
    result = count;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(result);
}

static PyMethodDef methods[] = {
    {"opening_brackets", opening_brackets, METH_VARARGS,
     "opening_brackets(buf, carried, depth) -> -2 at a CR, 0x1f or non-ASCII byte, -1 if a "
     "line has more than depth '{' and '[', else those of the last line."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_brackets", "Opening brackets per NDJSON line.", -1, methods,
};

PyMODINIT_FUNC
PyInit__brackets(void)
{
    return PyModule_Create(&module);
}
