/* outlit._speedups: optional compiled fast paths for the three hottest functions.
 *
 * Each function here handles only the common case (plain str identities, a plain dict of
 * properties, no explicit timestamp, room in the queue, ...) and hands every other call,
 * unchanged, to the pure-Python function it stands in for, which does the checking, converting,
 * raising and logging. So the pure-Python code stays the definition of what a call does; this
 * file only makes the usual call cheaper. tests/outlit/test_speedups.py compares the two.
 *
 *   queue_track    the body of Outlit.track, which calls it first (Outlit.track stays a
 *                  Python function: mocks, autospec and subclasses see what they expect)
 *   custom_event   outlit._events.custom_event: a queued track() tuple to its wire dict
 *   identity_args  outlit._tracker._identity_args: an identity function's dict to track()'s
 *                  five identity arguments
 *
 * Built by hatch_build.py when a C compiler is available; `import outlit` works without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>

/* The identity keys of an identity function's answer. */
static PyObject *s_email, *s_user_id, *s_fingerprint, *s_customer_id, *s_customer_domain;
/* Names of what is called on the client and its queue, and of the clock in outlit._client. */
static PyObject *s_append, *s_wake_worker, *s_now;
/* Wire keys and fixed values of a custom event. */
static PyObject *k_timestamp, *k_url, *k_event_name, *k_uuid, *k_email,
    *k_user_id, *k_fingerprint, *k_customer_id, *k_customer_domain, *k_properties;
static PyObject *v_server;
/* Set by the use_*() functions: the pure-Python functions, outlit._client's globals, the
 * wire-dict template. */
static PyObject *py_custom_event, *py_identity_args, *client_globals, *custom_template;

/* str.isspace(), or true for "" as well: a value that is no identity. Exact str only. */
static int
is_blank(PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < length; i++) {
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) {
            return 0;
        }
    }
    return 1;
}

/* None or a str itself (a subclass goes to Python, which converts it); a str with characters.
 * Before 3.12 a str made through the deprecated Py_UNICODE API may not be "ready" (its
 * characters not yet laid out): that one goes to Python too. */
#if PY_VERSION_HEX < 0x030C0000
#define PLAIN_STR(value) (PyUnicode_CheckExact(value) && PyUnicode_IS_READY(value))
#else
#define PLAIN_STR(value) PyUnicode_CheckExact(value)
#endif
#define NONE_OR_STR(value) ((value) == Py_None || PLAIN_STR(value))
#define TRUTHY_STR(value) ((value) != Py_None && PyUnicode_GET_LENGTH(value) > 0)

/* The identity the url names: the first with characters, in this order (checked NONE_OR_STR
 * already); NULL when none has any. */
static inline PyObject *
first_identity(PyObject *email, PyObject *user_id, PyObject *customer_domain,
               PyObject *customer_id, PyObject *fingerprint)
{
    PyObject *order[5] = {email, user_id, customer_domain, customer_id, fingerprint};
    for (int i = 0; i < 5; i++) {
        if (TRUTHY_STR(order[i])) {
            return order[i];
        }
    }
    return NULL;
}

/* ---- queue_track: the usual Outlit.track() call ------------------------------------------ */

/* queue_track(client, queue, room, wake_at, event_name, email, user_id, fingerprint,
 *             customer_id, customer_domain, properties, timestamp)
 *
 * Outlit.track passes its arguments and the client's queue, room and wake-up size (cheaper to
 * read in Python). Queues the call's tuple and returns True for the usual call; returns False,
 * having done nothing, for every other call, which Outlit.track then handles in Python. */
static PyObject *
queue_track(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 12 || client_globals == NULL || !PyLong_CheckExact(args[2])
        || !PyLong_CheckExact(args[3])) {
        Py_RETURN_FALSE;
    }
    PyObject *client = args[0], *queue = args[1];
    PyObject *event_name = args[4], *email = args[5], *user_id = args[6],
             *fingerprint = args[7], *customer_id = args[8], *customer_domain = args[9],
             *properties = args[10], *timestamp = args[11];
    if (!PLAIN_STR(event_name) || is_blank(event_name) || !NONE_OR_STR(email)
        || !NONE_OR_STR(user_id) || !NONE_OR_STR(fingerprint) || !NONE_OR_STR(customer_id)
        || !NONE_OR_STR(customer_domain) || timestamp != Py_None
        || (properties != Py_None && !PyDict_CheckExact(properties))) {
        Py_RETURN_FALSE;
    }
    /* The first identity in the url's order must not be blank (later blank ones are left out
     * by custom_event). */
    PyObject *first = first_identity(email, user_id, customer_domain, customer_id, fingerprint);
    if (first == NULL || is_blank(first)) {
        Py_RETURN_FALSE;
    }
    /* Room in the queue, compared as the Python code compares it: anything else (not started,
     * closed, disabled, full) is the Python code's business. */
    Py_ssize_t room = PyLong_AsSsize_t(args[2]);
    Py_ssize_t wake_at = PyLong_AsSsize_t(args[3]);
    if (room == -1 || wake_at == -1) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    Py_ssize_t size = PyObject_Size(queue);
    if (size < 0) {
        return NULL;
    }
    if (size >= room) {
        Py_RETURN_FALSE;
    }
    /* outlit._client._now, read on every call as the Python code reads it: a test that freezes
     * time.time (freezegun replaces it in modules' globals) freezes it here too. */
    PyObject *now = PyDict_GetItemWithError(client_globals, s_now);
    if (now == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "outlit._client._now is missing");
        }
        return NULL;
    }
    /* Borrowed from the module's globals: held while it runs, since it may rebind _now. */
    Py_INCREF(now);
    PyObject *stamp = PyObject_CallNoArgs(now);
    Py_DECREF(now);
    if (stamp == NULL) {
        return NULL;
    }
    PyObject *copied = properties == Py_None ? Py_NewRef(Py_None) : PyDict_Copy(properties);
    PyObject *item = copied == NULL ? NULL : PyTuple_New(8);
    if (item == NULL) {
        Py_XDECREF(copied);
        Py_DECREF(stamp);
        return NULL;
    }
    PyTuple_SET_ITEM(item, 0, Py_NewRef(event_name));
    PyTuple_SET_ITEM(item, 1, Py_NewRef(email));
    PyTuple_SET_ITEM(item, 2, Py_NewRef(user_id));
    PyTuple_SET_ITEM(item, 3, Py_NewRef(fingerprint));
    PyTuple_SET_ITEM(item, 4, Py_NewRef(customer_id));
    PyTuple_SET_ITEM(item, 5, Py_NewRef(customer_domain));
    PyTuple_SET_ITEM(item, 6, copied);
    PyTuple_SET_ITEM(item, 7, stamp);
    PyObject *appended = PyObject_CallMethodOneArg(queue, s_append, item);
    Py_DECREF(item);
    if (appended == NULL) {
        return NULL;
    }
    Py_DECREF(appended);
    if (size >= wake_at) {
        PyObject *woken = PyObject_CallMethodNoArgs(client, s_wake_worker);
        if (woken == NULL) {
            return NULL;
        }
        Py_DECREF(woken);
    }
    Py_RETURN_TRUE;
}

/* ---- custom_event ------------------------------------------------------------------------ */

static int
set_identity(PyObject *event, PyObject *key, PyObject *value)
{
    if (!TRUTHY_STR(value) || is_blank(value)) {
        return 0;
    }
    return PyDict_SetItem(event, key, value);
}

static PyObject *
custom_event(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || py_custom_event == NULL || !PyTuple_CheckExact(args[0])
        || PyTuple_GET_SIZE(args[0]) != 8) {
        goto in_python;
    }
    PyObject *item = args[0], *uuid = args[1];
    PyObject *event_name = PyTuple_GET_ITEM(item, 0), *email = PyTuple_GET_ITEM(item, 1),
             *user_id = PyTuple_GET_ITEM(item, 2), *fingerprint = PyTuple_GET_ITEM(item, 3),
             *customer_id = PyTuple_GET_ITEM(item, 4),
             *customer_domain = PyTuple_GET_ITEM(item, 5),
             *properties = PyTuple_GET_ITEM(item, 6), *ts = PyTuple_GET_ITEM(item, 7);
    if (!NONE_OR_STR(email) || !NONE_OR_STR(user_id) || !NONE_OR_STR(fingerprint)
        || !NONE_OR_STR(customer_id) || !NONE_OR_STR(customer_domain)) {
        goto in_python;
    }
    PyObject *first = first_identity(email, user_id, customer_domain, customer_id, fingerprint);
    if (first == NULL) {
        goto in_python;
    }
    PyObject *timestamp = PyFloat_CheckExact(ts) ? PyLong_FromDouble(PyFloat_AS_DOUBLE(ts) * 1000)
                                                 : Py_NewRef(ts);
    if (timestamp == NULL) {
        return NULL;
    }
    PyObject *url = PyUnicode_Concat(v_server, first);
    PyObject *event = url == NULL ? NULL : PyDict_Copy(custom_template);
    if (event == NULL || PyDict_SetItem(event, k_timestamp, timestamp) < 0
        || PyDict_SetItem(event, k_url, url) < 0
        || PyDict_SetItem(event, k_event_name, event_name) < 0
        || PyDict_SetItem(event, k_uuid, uuid) < 0 || set_identity(event, k_email, email) < 0
        || set_identity(event, k_user_id, user_id) < 0
        || set_identity(event, k_fingerprint, fingerprint) < 0
        || set_identity(event, k_customer_id, customer_id) < 0
        || set_identity(event, k_customer_domain, customer_domain) < 0
        || (properties != Py_None && PyDict_SetItem(event, k_properties, properties) < 0)) {
        Py_XDECREF(event);
        Py_XDECREF(url);
        Py_DECREF(timestamp);
        return NULL;
    }
    Py_DECREF(url);
    Py_DECREF(timestamp);
    return event;
in_python:
    if (py_custom_event == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "outlit._speedups: use_custom_event() was not called");
        return NULL;
    }
    return PyObject_Vectorcall(py_custom_event, args, nargs, NULL);
}

/* ---- identity_args ----------------------------------------------------------------------- */

static PyObject *
identity_args(PyObject *module, PyObject *found)
{
    if (py_identity_args == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "outlit._speedups: use_identity_args() was not called");
        return NULL;
    }
    if (!PyDict_CheckExact(found)) {
        return PyObject_CallOneArg(py_identity_args, found);
    }
    PyObject *keys[5] = {s_email, s_user_id, s_fingerprint, s_customer_id, s_customer_domain};
    PyObject *ids = PyTuple_New(5);
    if (ids == NULL) {
        return NULL;
    }
    int any = 0;
    for (int i = 0; i < 5; i++) {
        PyObject *value = PyDict_GetItemWithError(found, keys[i]);
        if (value == NULL) {
            if (PyErr_Occurred()) {
                /* A key of the app's own whose __eq__ raised: let the Python code say so. */
                PyErr_Clear();
                Py_DECREF(ids);
                return PyObject_CallOneArg(py_identity_args, found);
            }
            value = Py_None;
        }
        else if (value != Py_None) {
            if (!PLAIN_STR(value) || PyUnicode_GET_LENGTH(value) == 0) {
                Py_DECREF(ids);
                return PyObject_CallOneArg(py_identity_args, found);
            }
            any = 1;
        }
        PyTuple_SET_ITEM(ids, i, Py_NewRef(value));
    }
    if (!any) {
        /* No identity: the Python code tells an anonymous answer from a misspelled one. */
        Py_DECREF(ids);
        return PyObject_CallOneArg(py_identity_args, found);
    }
    return ids;
}

/* ---- module ------------------------------------------------------------------------------ */

/* The state above is the process's, set up once by the main interpreter: a sub-interpreter
 * (mod_wsgi runs apps in them) gets the same module object and must not set it up again, or
 * the main interpreter's calls would reach the sub-interpreter's functions. outlit._compiled
 * uses the pure-Python paths in a sub-interpreter. */
static PyObject *
in_main_interpreter(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(PyInterpreterState_Get() == PyInterpreterState_Main());
}

/* Each fast path is switched on by giving it what it hands other calls to. */
static PyObject *
use_custom_event(PyObject *module, PyObject *args)
{
    PyObject *function, *template;
    if (!PyArg_ParseTuple(args, "OO!:use_custom_event", &function, &PyDict_Type, &template)) {
        return NULL;
    }
    Py_XSETREF(py_custom_event, Py_NewRef(function));
    Py_XSETREF(custom_template, Py_NewRef(template));
    Py_RETURN_NONE;
}

static PyObject *
use_identity_args(PyObject *module, PyObject *function)
{
    Py_XSETREF(py_identity_args, Py_NewRef(function));
    Py_RETURN_NONE;
}

static PyObject *
use_client_globals(PyObject *module, PyObject *globals)
{
    if (!PyDict_Check(globals)) {
        PyErr_SetString(PyExc_TypeError, "use_client_globals needs outlit._client's globals()");
        return NULL;
    }
    Py_XSETREF(client_globals, Py_NewRef(globals));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"queue_track", (PyCFunction)(void (*)(void))queue_track, METH_FASTCALL,
     "queue_track(client, queue, room, wake_at, event_name, email, user_id, fingerprint, "
     "customer_id, customer_domain, properties, timestamp)\n--\n\n"
     "Queue the usual track() call and return True, or return False for Python to handle it."},
    {"custom_event", (PyCFunction)(void (*)(void))custom_event, METH_FASTCALL,
     "custom_event(item, uuid)\n--\n\nThe wire dict of a queued track() tuple."},
    {"identity_args", identity_args, METH_O,
     "identity_args(found)\n--\n\ntrack()'s five identity arguments from an identity answer."},
    {"in_main_interpreter", in_main_interpreter, METH_NOARGS,
     "in_main_interpreter()\n--\n\nWhether this is the interpreter the state is set up for."},
    {"use_custom_event", use_custom_event, METH_VARARGS,
     "use_custom_event(function, template)\n--\n\n"
     "The pure-Python custom_event and its wire-dict template."},
    {"use_identity_args", use_identity_args, METH_O,
     "use_identity_args(function)\n--\n\nThe pure-Python _identity_args."},
    {"use_client_globals", use_client_globals, METH_O,
     "use_client_globals(globals)\n--\n\noutlit._client's globals (its clock, _now)."},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "outlit._speedups",
    .m_doc = "Compiled fast paths of outlit (optional).",
    .m_size = -1,
    .m_methods = module_methods,
};

#define INTERN(var, text)                                                                      \
    if ((var = PyUnicode_InternFromString(text)) == NULL) {                                    \
        return NULL;                                                                           \
    }

PyMODINIT_FUNC
PyInit__speedups(void)
{
    INTERN(s_email, "email");
    INTERN(s_user_id, "user_id");
    INTERN(s_fingerprint, "fingerprint");
    INTERN(s_customer_id, "customer_id");
    INTERN(s_customer_domain, "customer_domain");
    INTERN(s_append, "append");
    INTERN(s_wake_worker, "_wake_worker");
    INTERN(s_now, "_now");
    INTERN(k_timestamp, "timestamp");
    INTERN(k_url, "url");
    INTERN(k_event_name, "eventName");
    INTERN(k_uuid, "uuid");
    INTERN(k_email, "email");
    INTERN(k_user_id, "userId");
    INTERN(k_fingerprint, "fingerprint");
    INTERN(k_customer_id, "customerId");
    INTERN(k_customer_domain, "customerDomain");
    INTERN(k_properties, "properties");
    INTERN(v_server, "server://");
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
#ifdef OUTLIT_SOURCE_DIGEST
    /* What hatch_build.py compiled: a test tells a module older than its source by it. */
    if (PyModule_AddStringConstant(module, "source_digest", OUTLIT_SOURCE_DIGEST) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#endif
    return module;
}
