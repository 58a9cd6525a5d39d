/* The field sample's walk over a decoded event: the compiled twin of
 * dataset._walk_noting (which stays the fallback where this module was not built, and for
 * anything but plain JSON values).
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

#define MAX_NEST 600

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
                path = PyUnicode_FromFormat("%U.%U", prefix, key);
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

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS,
     "walk(doc, arrays, odd) -> flattened event, or None for the Python walk to take it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walk", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__walk(void)
{
    return PyModule_Create(&module);
}
