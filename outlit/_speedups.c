/* outlit._speedups: optional compiled fast paths for the hottest functions.
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
 *   take_batch     outlit._queue.EventQueue.take_batch: the worker's next batch as per-event
 *                  JSON bytes; it writes the usual track() tuple's JSON itself, with no wire
 *                  dict and no call to the JSON encoder, and hands every other item to Python
 *   Tracker        the base of outlit.BoundTracker: its three attributes and its track(),
 *                  which queues the usual call itself (as queue_track), hands a call with odd
 *                  arguments to BoundTracker's Python track() and one for any other client to
 *                  that client's track(); lookup_tracker makes the trackers adapters make on
 *                  every request
 *
 * Built by hatch_build.py when a C compiler is available; `import outlit` works without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* The identity keys of an identity function's answer. */
static PyObject *s_email, *s_user_id, *s_fingerprint, *s_customer_id, *s_customer_domain;
/* Names of what is called on the client and its queue, and of the clock in outlit._client. */
static PyObject *s_append, *s_wake_worker, *s_now, *s_popleft, *s_appendleft;
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
/* The body of queue_track, for it and for Tracker.track: 1 when the call is queued, 0 when
 * it is left to Python (nothing done), -1 with an exception set. args: the client, its queue,
 * room and wake-up size, then track()'s eight arguments in their order. */
static int
queue_call(PyObject *const *args)
{
    if (client_globals == NULL || !PyLong_CheckExact(args[2]) || !PyLong_CheckExact(args[3])) {
        return 0;
    }
    PyObject *client = args[0], *queue = args[1];
    PyObject *event_name = args[4], *email = args[5], *user_id = args[6],
             *fingerprint = args[7], *customer_id = args[8], *customer_domain = args[9],
             *properties = args[10], *timestamp = args[11];
    if (!PLAIN_STR(event_name) || is_blank(event_name) || !NONE_OR_STR(email)
        || !NONE_OR_STR(user_id) || !NONE_OR_STR(fingerprint) || !NONE_OR_STR(customer_id)
        || !NONE_OR_STR(customer_domain) || timestamp != Py_None
        || (properties != Py_None && !PyDict_CheckExact(properties))) {
        return 0;
    }
    /* The first identity in the url's order must not be blank (later blank ones are left out
     * by custom_event). */
    PyObject *first = first_identity(email, user_id, customer_domain, customer_id, fingerprint);
    if (first == NULL || is_blank(first)) {
        return 0;
    }
    /* Room in the queue, compared as the Python code compares it: anything else (not started,
     * closed, disabled, full) is the Python code's business. */
    Py_ssize_t room = PyLong_AsSsize_t(args[2]);
    Py_ssize_t wake_at = PyLong_AsSsize_t(args[3]);
    if (room == -1 || wake_at == -1) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t size = PyObject_Size(queue);
    if (size < 0) {
        return -1;
    }
    if (size >= room) {
        return 0;
    }
    /* outlit._client._now, read on every call as the Python code reads it: a test that freezes
     * time.time (freezegun replaces it in modules' globals) freezes it here too. */
    PyObject *now = PyDict_GetItemWithError(client_globals, s_now);
    if (now == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "outlit._client._now is missing");
        }
        return -1;
    }
    /* Borrowed from the module's globals: held while it runs, since it may rebind _now. */
    Py_INCREF(now);
    PyObject *stamp = PyObject_CallNoArgs(now);
    Py_DECREF(now);
    if (stamp == NULL) {
        return -1;
    }
    PyObject *copied = properties == Py_None ? Py_NewRef(Py_None) : PyDict_Copy(properties);
    PyObject *item = copied == NULL ? NULL : PyTuple_New(8);
    if (item == NULL) {
        Py_XDECREF(copied);
        Py_DECREF(stamp);
        return -1;
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
        return -1;
    }
    Py_DECREF(appended);
    if (size >= wake_at) {
        PyObject *woken = PyObject_CallMethodNoArgs(client, s_wake_worker);
        if (woken == NULL) {
            return -1;
        }
        Py_DECREF(woken);
    }
    return 1;
}

static PyObject *
queue_track(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int queued = nargs == 12 ? queue_call(args) : 0;
    if (queued < 0) {
        return NULL;
    }
    return PyBool_FromLong(queued);
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

/* ---- take_batch: the worker's batch, track() tuples written as JSON here ----------------- */

/* What the writers below answer: written; not for this code (nothing raised: Python encodes
 * the item); or an exception is set. */
#define ENC_OK 0
#define ENC_OTHER 1
#define ENC_ERROR -1

/* Nesting deeper than this goes to Python, which encodes it or writes its placeholder. */
#define MAX_DEPTH 32

/* One event's JSON, built in place; `limit` is the most an event may take (a longer one goes
 * to Python, which drops it with its log line). */
typedef struct {
    char *data;
    Py_ssize_t len, cap, limit;
} Buf;

static int
buf_grow(Buf *buf, Py_ssize_t extra)
{
    if (extra > PY_SSIZE_T_MAX / 4 - buf->len) {
        return ENC_OTHER;
    }
    Py_ssize_t cap = buf->cap ? buf->cap : 1024;
    while (cap < buf->len + extra) {
        cap *= 2;
    }
    char *data = PyMem_Realloc(buf->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return ENC_ERROR;
    }
    buf->data = data;
    buf->cap = cap;
    return ENC_OK;
}

static ALWAYS_INLINE int
buf_room(Buf *buf, Py_ssize_t extra)
{
    return extra <= buf->cap - buf->len ? ENC_OK : buf_grow(buf, extra);
}

/* Inlined, so that the many short fixed texts are copied without a call to memcpy. */
static ALWAYS_INLINE int
put(Buf *buf, const char *text, Py_ssize_t size)
{
    int status = buf_room(buf, size);
    if (status == ENC_OK) {
        memcpy(buf->data + buf->len, text, (size_t)size);
        buf->len += size;
    }
    return status;
}

#define PUT_TEXT(buf, literal) put(buf, literal, (Py_ssize_t)sizeof(literal) - 1)

/* A byte JSON escapes: ", \ or a control character. ESCAPE_IN_WORD: whether any of a word's
 * eight bytes is one (the exact "has a byte less than n / equal to c" word tests). */
#define NEEDS_ESCAPE(c) ((c) < 0x20 || (c) == '"' || (c) == '\\')
#define BYTES_OF(c) (UINT64_C(0x0101010101010101) * (c))
#define HAS_LESS(w, n) (((w) - BYTES_OF(n)) & ~(w) & BYTES_OF(0x80))
#define HAS_BYTE(w, c) HAS_LESS((w) ^ BYTES_OF(c), 1)
#define ESCAPE_IN_WORD(w) (HAS_LESS(w, 0x20) | HAS_BYTE(w, '"') | HAS_BYTE(w, '\\'))

/* A str's characters as JSON string content, escaped as json.dumps(ensure_ascii=False) does
 * it: ", \ and the control characters; the rest as UTF-8. A str that has no UTF-8 form (a lone
 * surrogate) goes to Python, which replaces it. */
static int
put_chars(Buf *buf, PyObject *text)
{
    static const char hex[] = "0123456789abcdef";
    if (!PLAIN_STR(text)) {
        return ENC_OTHER;
    }
    Py_ssize_t size;
    const char *utf8;
    if (PyUnicode_IS_COMPACT_ASCII(text)) {
        size = PyUnicode_GET_LENGTH(text);
        utf8 = (const char *)PyUnicode_DATA(text);
    }
    else if ((utf8 = PyUnicode_AsUTF8AndSize(text, &size)) == NULL) {
        PyErr_Clear();
        return ENC_OTHER;
    }
    if (size > buf->limit) {
        return ENC_OTHER;
    }
    int status = buf_room(buf, size * 6);
    if (status != ENC_OK) {
        return status;
    }
    char *out = buf->data + buf->len;
    const unsigned char *next = (const unsigned char *)utf8, *end = next + size;
    while (next < end) {
        /* Copy the run of characters that need no escape, found eight bytes at a time. */
        const unsigned char *run = next;
        uint64_t word;
        while (end - next >= 8) {
            memcpy(&word, next, 8);
            if (ESCAPE_IN_WORD(word)) {
                break;
            }
            next += 8;
        }
        while (next < end && !NEEDS_ESCAPE(*next)) {
            next++;
        }
        memcpy(out, run, (size_t)(next - run));
        out += next - run;
        if (next == end) {
            break;
        }
        unsigned char c = *next++;
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    buf->len = out - buf->data;
    return ENC_OK;
}

static int
put_str(Buf *buf, PyObject *text)
{
    int status;
    if ((status = PUT_TEXT(buf, "\"")) != ENC_OK || (status = put_chars(buf, text)) != ENC_OK) {
        return status;
    }
    return PUT_TEXT(buf, "\"");
}

static int
put_int64(Buf *buf, long long value)
{
    char digits[24];
    char *end = digits + sizeof(digits), *start = end;
    unsigned long long rest = (unsigned long long)value;
    if (value < 0) {
        rest = 0ULL - rest;
    }
    do {
        *--start = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (value < 0) {
        *--start = '-';
    }
    return put(buf, start, end - start);
}

/* An int, exactly as repr() writes it, when it fits 64 bits; a longer one goes to Python. */
static int
put_int(Buf *buf, PyObject *number)
{
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (overflow) {
        return ENC_OTHER;
    }
    if (value == -1 && PyErr_Occurred()) {
        return ENC_ERROR;
    }
    return put_int64(buf, value);
}

static int
put_value(Buf *buf, PyObject *value, int depth);

static int
put_items(Buf *buf, PyObject *const *items, Py_ssize_t count, int depth)
{
    int status = PUT_TEXT(buf, "[");
    for (Py_ssize_t i = 0; i < count && status == ENC_OK; i++) {
        if (buf->len > buf->limit) {
            return ENC_OTHER;
        }
        if (i && (status = PUT_TEXT(buf, ",")) != ENC_OK) {
            break;
        }
        status = put_value(buf, items[i], depth + 1);
    }
    return status == ENC_OK ? PUT_TEXT(buf, "]") : status;
}

/* A property value: None, bool, str, int, float (finite), or a dict (str keys), list or tuple
 * of them. Any other value (a subclass, a datetime, NaN, ...) goes to Python, which converts
 * it. Only built-in types are read, so no Python code runs: nothing changes them meanwhile. */
static int
put_value(Buf *buf, PyObject *value, int depth)
{
    int status;
    if (value == Py_None) {
        return PUT_TEXT(buf, "null");
    }
    if (value == Py_True) {
        return PUT_TEXT(buf, "true");
    }
    if (value == Py_False) {
        return PUT_TEXT(buf, "false");
    }
    if (PyUnicode_CheckExact(value)) {
        return put_str(buf, value);
    }
    if (PyLong_CheckExact(value)) {
        return put_int(buf, value);
    }
    if (PyFloat_CheckExact(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        if (!isfinite(number)) {
            return ENC_OTHER;
        }
        /* What float.__repr__ writes, as json.dumps does. */
        char *text = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) {
            return ENC_ERROR;
        }
        status = put(buf, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return status;
    }
    if (depth >= MAX_DEPTH || buf->len > buf->limit) {
        return ENC_OTHER;
    }
    if (PyList_CheckExact(value)) {
        return put_items(buf, PySequence_Fast_ITEMS(value), PyList_GET_SIZE(value), depth);
    }
    if (PyTuple_CheckExact(value)) {
        return put_items(buf, PySequence_Fast_ITEMS(value), PyTuple_GET_SIZE(value), depth);
    }
    if (!PyDict_CheckExact(value)) {
        return ENC_OTHER;
    }
    Py_ssize_t position = 0;
    PyObject *key, *item;
    int first = 1;
    status = PUT_TEXT(buf, "{");
    while (status == ENC_OK && PyDict_Next(value, &position, &key, &item)) {
        if (buf->len > buf->limit) {
            return ENC_OTHER;
        }
        /* put_str hands a key that is not a str to Python, which converts it. */
        if ((!first && (status = PUT_TEXT(buf, ",")) != ENC_OK)
            || (status = put_str(buf, key)) != ENC_OK || (status = PUT_TEXT(buf, ":")) != ENC_OK) {
            break;
        }
        first = 0;
        status = put_value(buf, item, depth + 1);
    }
    return status == ENC_OK ? PUT_TEXT(buf, "}") : status;
}

/* ,"key":"value" for an identity custom_event keeps (one with characters, not all blank). */
static int
put_identity(Buf *buf, const char *key, Py_ssize_t key_size, PyObject *value)
{
    if (!TRUTHY_STR(value) || is_blank(value)) {
        return ENC_OK;
    }
    int status = put(buf, key, key_size);
    return status == ENC_OK ? put_str(buf, value) : status;
}

#define PUT_IDENTITY(buf, key, value) \
    put_identity(buf, ",\"" key "\":", (Py_ssize_t)sizeof(",\"" key "\":") - 1, value)

/* A random (version 4) UUID as a JSON string, from 16 random bytes, as uuid.UUID(bytes=...,
 * version=4) sets its version and variant bits and str() writes it. */
static int
put_uuid(Buf *buf, const unsigned char *random)
{
    static const char hex[] = "0123456789abcdef";
    int status = buf_room(buf, 38);
    if (status != ENC_OK) {
        return status;
    }
    char *out = buf->data + buf->len;
    *out++ = '"';
    for (int i = 0; i < 16; i++) {
        unsigned char byte = random[i];
        if (i == 6) {
            byte = (byte & 0x0f) | 0x40; /* the version: 4 */
        }
        else if (i == 8) {
            byte = (byte & 0x3f) | 0x80; /* the variant: RFC 4122 */
        }
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *out++ = '-';
        }
        *out++ = hex[byte >> 4];
        *out++ = hex[byte & 15];
    }
    *out++ = '"';
    buf->len = out - buf->data;
    return ENC_OK;
}

/* The JSON of custom_event(item, uuid), keys in the same order, into buf (emptied first), with
 * the uuid made from 16 random bytes. */
static int
put_track(Buf *buf, PyObject *item, const unsigned char *random)
{
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 8) {
        return ENC_OTHER;
    }
    PyObject *event_name = PyTuple_GET_ITEM(item, 0), *email = PyTuple_GET_ITEM(item, 1),
             *user_id = PyTuple_GET_ITEM(item, 2), *fingerprint = PyTuple_GET_ITEM(item, 3),
             *customer_id = PyTuple_GET_ITEM(item, 4),
             *customer_domain = PyTuple_GET_ITEM(item, 5),
             *properties = PyTuple_GET_ITEM(item, 6), *ts = PyTuple_GET_ITEM(item, 7);
    if (!PLAIN_STR(event_name) || !NONE_OR_STR(email) || !NONE_OR_STR(user_id)
        || !NONE_OR_STR(fingerprint) || !NONE_OR_STR(customer_id)
        || !NONE_OR_STR(customer_domain)
        || (properties != Py_None && !PyDict_CheckExact(properties))) {
        return ENC_OTHER;
    }
    PyObject *first = first_identity(email, user_id, customer_domain, customer_id, fingerprint);
    if (first == NULL) {
        return ENC_OTHER;
    }
    long long timestamp;
    if (PyFloat_CheckExact(ts)) {
        /* int(ts * 1000), which truncates as the cast does, for every finite value in range. */
        double milliseconds = PyFloat_AS_DOUBLE(ts) * 1000;
        if (!(milliseconds > -9.2e18 && milliseconds < 9.2e18)) {
            return ENC_OTHER;
        }
        timestamp = (long long)milliseconds;
    }
    else if (PyLong_CheckExact(ts)) {
        int overflow;
        timestamp = PyLong_AsLongLongAndOverflow(ts, &overflow);
        if (overflow) {
            return ENC_OTHER;
        }
        if (timestamp == -1 && PyErr_Occurred()) {
            return ENC_ERROR;
        }
    }
    else {
        return ENC_OTHER;
    }
    int status;
    buf->len = 0;
    if ((status = PUT_TEXT(buf, "{\"type\":\"custom\",\"timestamp\":")) != ENC_OK
        || (status = put_int64(buf, timestamp)) != ENC_OK
        || (status = PUT_TEXT(buf, ",\"url\":\"server://")) != ENC_OK
        || (status = put_chars(buf, first)) != ENC_OK
        || (status = PUT_TEXT(buf, "\",\"path\":\"/\",\"eventName\":")) != ENC_OK
        || (status = put_str(buf, event_name)) != ENC_OK
        || (status = PUT_TEXT(buf, ",\"uuid\":")) != ENC_OK
        || (status = put_uuid(buf, random)) != ENC_OK
        || (status = PUT_IDENTITY(buf, "email", email)) != ENC_OK
        || (status = PUT_IDENTITY(buf, "userId", user_id)) != ENC_OK
        || (status = PUT_IDENTITY(buf, "fingerprint", fingerprint)) != ENC_OK
        || (status = PUT_IDENTITY(buf, "customerId", customer_id)) != ENC_OK
        || (status = PUT_IDENTITY(buf, "customerDomain", customer_domain)) != ENC_OK) {
        return status;
    }
    if (properties != Py_None
        && ((status = PUT_TEXT(buf, ",\"properties\":")) != ENC_OK
            || (status = put_value(buf, properties, 1)) != ENC_OK)) {
        return status;
    }
    status = PUT_TEXT(buf, "}");
    return status == ENC_OK && buf->len > buf->limit ? ENC_OTHER : status;
}

/* Put item (a reference this takes over) back at the queue's front: 0, or -1 with an
 * exception set. */
static int
push_back(PyObject *appendleft, PyObject *item)
{
    PyObject *pushed = PyObject_CallOneArg(appendleft, item);
    Py_DECREF(item);
    if (pushed == NULL) {
        return -1;
    }
    Py_DECREF(pushed);
    return 0;
}

/* Put item back at the front after an error, keeping the error set: an item is not lost to a
 * failed allocation. Takes over the reference. */
static void
push_back_keeping_error(PyObject *appendleft, PyObject *item)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (push_back(appendleft, item) < 0) {
        PyErr_Clear();
    }
    PyErr_Restore(type, value, traceback);
}

/* take_batch(queue, max_events, max_bytes, overhead, marker_type, random)
 *
 * EventQueue.take_batch with the usual track() tuple encoded here, its uuid made from the next
 * 16 bytes of `random` (os.urandom). Encoded events (bytes) are taken as they are; every other
 * item (an event dict, a tuple with a value only Python converts, or one met after the random
 * bytes ran out) is taken as it is, for the worker to encode. No Python code runs here: the
 * worker calls this under its move lock, which pending() also takes, and the encoding that
 * may run the app's code (to_dict(), __str__, log handlers) happens after the lock is let go.
 * A flush marker (marker_type) stops the batch and stays in front. The batch stops at
 * max_events, or before the encoded event that would take the body (`overhead` bytes plus the
 * events and their commas, the items left as they are not counted) over max_bytes, which goes
 * back to the front encoded. */
static PyObject *
take_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyType_Check(args[4]) || !PyBytes_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "take_batch(queue, max_events, max_bytes, overhead, "
                                         "marker_type, random)");
        return NULL;
    }
    PyObject *queue = args[0], *marker_type = args[4];
    const unsigned char *random = (const unsigned char *)PyBytes_AS_STRING(args[5]);
    Py_ssize_t random_left = PyBytes_GET_SIZE(args[5]) / 16;
    Py_ssize_t max_events = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[2]);
    Py_ssize_t overhead = PyLong_AsSsize_t(args[3]);
    if ((max_events == -1 || max_bytes == -1 || overhead == -1) && PyErr_Occurred()) {
        return NULL;
    }
    Buf buf = {NULL, 0, 0, max_bytes - overhead};
    PyObject *popleft = NULL, *appendleft = NULL;
    PyObject *batch = PyList_New(0);
    if (batch == NULL || (popleft = PyObject_GetAttr(queue, s_popleft)) == NULL
        || (appendleft = PyObject_GetAttr(queue, s_appendleft)) == NULL) {
        goto error;
    }
    Py_ssize_t size = overhead;
    while (PyList_GET_SIZE(batch) < max_events) {
        Py_ssize_t waiting = PyObject_Size(queue);
        if (waiting <= 0) {
            if (waiting < 0) {
                goto error;
            }
            break;
        }
        PyObject *item = PyObject_CallNoArgs(popleft);
        if (item == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_IndexError)) {
                goto error;
            }
            PyErr_Clear(); /* emptied meanwhile by discard_all() on another thread */
            break;
        }
        PyObject *encoded = NULL;
        if (PyBytes_CheckExact(item)) {
            encoded = item; /* encoded already: a batch put back */
        }
        else if ((PyObject *)Py_TYPE(item) != marker_type) {
            int status = ENC_OTHER;
            if (PyTuple_CheckExact(item) && random_left > 0) {
                status = put_track(&buf, item, random);
            }
            if (status != ENC_OK) {
                /* Taken as it is (ENC_OTHER), or the error passed on with the item back. */
                if (status == ENC_ERROR) {
                    push_back_keeping_error(appendleft, item);
                    goto error;
                }
                if (PyList_Append(batch, item) < 0) {
                    push_back_keeping_error(appendleft, item);
                    goto error;
                }
                Py_DECREF(item);
                continue;
            }
            random += 16;
            random_left--;
            encoded = PyBytes_FromStringAndSize(buf.data, buf.len);
            if (encoded == NULL) {
                push_back_keeping_error(appendleft, item);
                goto error;
            }
            Py_DECREF(item);
        }
        else {
            /* A flush marker: nothing behind it goes before what is ahead of it is settled. */
            if (push_back(appendleft, item) < 0) {
                goto error;
            }
            break;
        }
        Py_ssize_t added = PyBytes_GET_SIZE(encoded) + (PyList_GET_SIZE(batch) ? 1 : 0);
        if (size + added > max_bytes && PyList_GET_SIZE(batch)) {
            if (push_back(appendleft, encoded) < 0) {
                goto error;
            }
            break;
        }
        if (PyList_Append(batch, encoded) < 0) {
            push_back_keeping_error(appendleft, encoded);
            goto error;
        }
        Py_DECREF(encoded);
        size += added;
    }
    PyMem_Free(buf.data);
    Py_DECREF(popleft);
    Py_DECREF(appendleft);
    return batch;
error:
    /* What was taken goes back in front, in its order (ahead of an item put back already). */
    if (batch != NULL && appendleft != NULL) {
        for (Py_ssize_t i = PyList_GET_SIZE(batch) - 1; i >= 0; i--) {
            push_back_keeping_error(appendleft, Py_NewRef(PyList_GET_ITEM(batch, i)));
        }
    }
    PyMem_Free(buf.data);
    Py_XDECREF(popleft);
    Py_XDECREF(appendleft);
    Py_XDECREF(batch);
    return NULL;
}

/* ---- Tracker: the compiled base of outlit.BoundTracker ------------------------------------ */

/* BoundTracker's three attributes, and its track(): the call a view makes on every request.
 * Every other method of BoundTracker stays in Python (outlit/_tracker.py), which also defines
 * what track() does: BoundTracker.track in Python, used without this module. */
typedef struct {
    PyObject_HEAD
    PyObject *client; /* _client */
    PyObject *ids;    /* _ids: track()'s five identity arguments once looked up (NULL: None) */
    PyObject *source; /* _source: where the identity is looked up */
} Tracker;

/* Set by use_tracker(): the Outlit class and the track function it defines (a client of a
 * subclass, or whose track was replaced, as a test's mock does, gets that track called),
 * BoundTracker, the two identity answers that are no identity, and the error of a call that
 * has none. */
static PyObject *outlit_class, *outlit_track, *bound_tracker_class, *no_ids, *failed_ids,
    *not_here, *invalid_event_error, *no_identity_message, *py_identity_raised, *py_track,
    *py_resolve;
static PyObject *s_track, *s_queue, *s_room, *s_wake_at, *s_resolve, *s_note_identity_failed;
/* track()'s keyword names, in the order of queue_call's arguments, and as one tuple. */
enum { A_EVENT_NAME, A_EMAIL, A_USER_ID, A_FINGERPRINT, A_CUSTOMER_ID, A_CUSTOMER_DOMAIN,
       A_PROPERTIES, A_TIMESTAMP, A_COUNT };
static const char *const track_names_text[A_COUNT] = {
    "event_name", "email", "user_id", "fingerprint",
    "customer_id", "customer_domain", "properties", "timestamp"};
static PyObject *track_names[A_COUNT], *track_kwnames;

static int
tracker_traverse(Tracker *self, visitproc visit, void *arg)
{
    Py_VISIT(self->client);
    Py_VISIT(self->ids);
    Py_VISIT(self->source);
    return 0;
}

static int
tracker_clear(Tracker *self)
{
    Py_CLEAR(self->client);
    Py_CLEAR(self->ids);
    Py_CLEAR(self->source);
    return 0;
}

static void
tracker_dealloc(Tracker *self)
{
    PyObject_GC_UnTrack(self);
    tracker_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Which of track()'s arguments `name` is (an interned keyword, as Python passes them); -1
 * for any other. */
static inline int
track_argument(PyObject *name)
{
    for (int i = 0; i < A_COUNT; i++) {
        if (name == track_names[i]) {
            return i;
        }
    }
    return -1;
}

/* `name` of `type` is still `defined` (a test may patch it on the class): 1, 0, or -1. */
static int
still_defined(PyObject *type, PyObject *name, PyObject *defined)
{
    PyObject *found = PyDict_GetItemWithError(((PyTypeObject *)type)->tp_dict, name);
    if (found == NULL && PyErr_Occurred()) {
        return -1;
    }
    return found == defined;
}

/* Queue the call as Outlit.track would, through queue_call: 1 done, 0 left to the client's
 * track(), -1 with an exception set. values: track()'s eight arguments. Only for a client of
 * Outlit itself whose track() is Outlit.track as defined (not replaced on the class or on the
 * client): any other client (a subclass, a proxy, a test's double) has its track() called. */
static int
queue_for(PyObject *client, PyObject *const *values)
{
    if (Py_TYPE(client) != (PyTypeObject *)outlit_class) {
        return 0;
    }
    int queued = still_defined(outlit_class, s_track, outlit_track);
    if (queued <= 0) {
        return queued;
    }
    PyObject *dict = PyObject_GenericGetDict(client, NULL);
    if (dict == NULL) {
        return -1;
    }
    if (PyDict_GetItemWithError(dict, s_track) != NULL) {
        queued = 0; /* replaced on this client */
    }
    else if (PyErr_Occurred()) {
        queued = -1;
    }
    if (queued > 0) {
        PyObject *call[12] = {client, NULL, NULL, NULL};
        PyObject *const names[3] = {s_queue, s_room, s_wake_at};
        for (int i = 0; i < 3 && queued > 0; i++) {
            call[i + 1] = PyDict_GetItemWithError(dict, names[i]);
            if (call[i + 1] == NULL) {
                queued = PyErr_Occurred() ? -1 : 0;
            }
        }
        if (queued > 0) {
            /* Held: the call runs Python code (the clock, the worker's wake-up). */
            Py_INCREF(call[1]);
            Py_INCREF(call[2]);
            Py_INCREF(call[3]);
            memcpy(call + 4, values, A_COUNT * sizeof(PyObject *));
            queued = queue_call(call);
            Py_DECREF(call[1]);
            Py_DECREF(call[2]);
            Py_DECREF(call[3]);
        }
    }
    Py_DECREF(dict);
    return queued;
}

/* BoundTracker._resolve(): the bound identity as track()'s five identity arguments, looked
 * up on first use (a new reference, or NULL with an exception set). A (lookup, subject) pair,
 * the source every adapter gives, is looked up here; any other source by the Python method,
 * as is every lookup of a BoundTracker subclass or of a replaced _resolve. */
static PyObject *
tracker_resolve(Tracker *self)
{
    PyObject *ids = self->ids, *source = self->source;
    if (ids != NULL && ids != Py_None) {
        return Py_NewRef(ids);
    }
    int own = Py_TYPE(self) == (PyTypeObject *)bound_tracker_class
              ? still_defined(bound_tracker_class, s_resolve, py_resolve)
              : 0;
    if (own < 0) {
        return NULL;
    }
    if (!own || source == NULL || !PyTuple_CheckExact(source) || PyTuple_GET_SIZE(source) != 2) {
        /* Another source, a subclass, or a _resolve a test replaced: the Python method. */
        return PyObject_CallMethodNoArgs((PyObject *)self, s_resolve);
    }
    Py_INCREF(source); /* held: the lookup is app code */
    PyObject *found = PyObject_CallOneArg(PyTuple_GET_ITEM(source, 0), PyTuple_GET_ITEM(source, 1));
    Py_DECREF(source);
    if (found == not_here) {
        /* The lookup cannot know the identity where it was asked (another thread): none for
         * this call, and nothing kept, so that the tracker's own request still finds it. */
        Py_DECREF(found);
        return Py_NewRef(no_ids);
    }
    if (found != NULL) {
        int truth = PyObject_IsTrue(found);
        ids = truth > 0 ? identity_args(NULL, found) : truth == 0 ? Py_NewRef(no_ids) : NULL;
        Py_DECREF(found);
    }
    if (ids == NULL) {
        /* The identity function raised, or its answer could not be read: logged by Python, and
         * the identity failed. Anything but an Exception (KeyboardInterrupt) goes on up. */
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (traceback != NULL && value != NULL) {
            PyException_SetTraceback(value, traceback);
        }
        ids = PyObject_CallOneArg(py_identity_raised, value != NULL ? value : Py_None);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        if (ids == NULL) {
            return NULL;
        }
    }
    /* Stored, then the source let go (often holding the request, which may hold this tracker),
     * as the Python method does. */
    Py_XSETREF(self->ids, Py_NewRef(ids));
    Py_CLEAR(self->source);
    return ids;
}

/* The call as it came, to BoundTracker's Python track(). */
static PyObject *
in_python(Tracker *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject **stack = PyMem_Malloc((1 + total) * sizeof(PyObject *));
    if (stack == NULL) {
        return PyErr_NoMemory();
    }
    stack[0] = (PyObject *)self;
    memcpy(stack + 1, args, total * sizeof(PyObject *));
    PyObject *done = PyObject_Vectorcall(py_track, stack, nargs + 1, kwnames);
    PyMem_Free(stack);
    return done;
}

/* BoundTracker.track(*, event_name, email=None, ...): what outlit/_tracker.py's does. */
static PyObject *
tracker_track(Tracker *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *values[A_COUNT] = {NULL, Py_None, Py_None, Py_None,
                                 Py_None, Py_None, Py_None, Py_None};
    Py_ssize_t given = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int usual = nargs == 0;
    for (Py_ssize_t i = 0; i < given && usual; i++) {
        int argument = track_argument(PyTuple_GET_ITEM(kwnames, i));
        if (argument < 0) {
            usual = 0;
        }
        else {
            values[argument] = args[i];
        }
    }
    if (!usual || values[A_EVENT_NAME] == NULL) {
        /* Positional arguments, an unknown keyword, no event_name: the Python method raises
         * its own TypeError. */
        return in_python(self, args, nargs, kwnames);
    }
    PyObject *client = NULL, *ids = NULL;
    if (values[A_EMAIL] == Py_None && values[A_USER_ID] == Py_None
        && values[A_FINGERPRINT] == Py_None && values[A_CUSTOMER_ID] == Py_None
        && values[A_CUSTOMER_DOMAIN] == Py_None) {
        /* The call names no identity: the bound one, looked up on first use. */
        ids = tracker_resolve(self);
        if (ids == NULL) {
            return NULL;
        }
        if (!PyTuple_CheckExact(ids) || PyTuple_GET_SIZE(ids) != 5) {
            /* Stored by something else than the lookup: unpacked (or refused) by Python. */
            Py_DECREF(ids);
            return in_python(self, args, nargs, kwnames);
        }
    }
    /* Read after the lookup, which runs app code, as the Python method reads it. */
    if (self->client == NULL) {
        Py_XDECREF(ids);
        return in_python(self, args, nargs, kwnames);
    }
    client = Py_NewRef(self->client);
    if (ids != NULL) {
        if (ids == no_ids) {
            PyErr_SetObject(invalid_event_error, no_identity_message);
            goto error;
        }
        if (ids == failed_ids) {
            PyObject *noted = PyObject_CallMethodNoArgs(client, s_note_identity_failed);
            if (noted == NULL) {
                goto error;
            }
            Py_DECREF(noted);
            Py_DECREF(ids);
            Py_DECREF(client);
            Py_RETURN_NONE;
        }
        for (int i = 0; i < 5; i++) {
            values[A_EMAIL + i] = PyTuple_GET_ITEM(ids, i);
        }
    }
    int queued = queue_for(client, values);
    if (queued < 0) {
        goto error;
    }
    if (queued == 0) {
        /* Every other call: the client's track(), with the same eight arguments. */
        PyObject *stack[1 + A_COUNT] = {client};
        memcpy(stack + 1, values, A_COUNT * sizeof(PyObject *));
        PyObject *done = PyObject_VectorcallMethod(
            s_track, stack, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, track_kwnames);
        if (done == NULL) {
            goto error;
        }
        Py_DECREF(done);
    }
    Py_XDECREF(ids);
    Py_DECREF(client);
    Py_RETURN_NONE;
error:
    Py_XDECREF(ids);
    Py_DECREF(client);
    return NULL;
}

static PyMemberDef tracker_members[] = {
    {"_client", T_OBJECT, offsetof(Tracker, client), 0, NULL},
    {"_ids", T_OBJECT, offsetof(Tracker, ids), 0, NULL},
    {"_source", T_OBJECT, offsetof(Tracker, source), 0, NULL},
    {NULL},
};

static PyMethodDef tracker_methods[] = {
    {"track", (PyCFunction)(void (*)(void))tracker_track, METH_FASTCALL | METH_KEYWORDS,
     "track($self, /, *, event_name, email=None, user_id=None, fingerprint=None, "
     "customer_id=None, customer_domain=None, properties=None, timestamp=None)\n--\n\n"
     ":meth:`Outlit.track`, with the bound identity when the call names none."},
    {NULL},
};

static PyTypeObject TrackerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "outlit._speedups.Tracker",
    .tp_doc = "The compiled base of outlit.BoundTracker: its attributes and track().",
    .tp_basicsize = sizeof(Tracker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)tracker_dealloc,
    .tp_traverse = (traverseproc)tracker_traverse,
    .tp_clear = (inquiry)tracker_clear,
    .tp_members = tracker_members,
    .tp_methods = tracker_methods,
};

/* lookup_tracker(client, lookup, subject): outlit._tracker.lookup_tracker, compiled. */
static PyObject *
lookup_tracker(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || bound_tracker_class == NULL) {
        PyErr_SetString(PyExc_TypeError, "lookup_tracker(client, lookup, subject), after "
                                         "use_tracker()");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)bound_tracker_class;
    PyObject *source = PyTuple_Pack(2, args[1], args[2]);
    if (source == NULL) {
        return NULL;
    }
    Tracker *tracker = (Tracker *)type->tp_alloc(type, 0);
    if (tracker == NULL) {
        Py_DECREF(source);
        return NULL;
    }
    tracker->client = Py_NewRef(args[0]);
    tracker->source = source;
    return (PyObject *)tracker;
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

static PyObject *
use_tracker(PyObject *module, PyObject *args)
{
    PyObject *outlit, *track, *tracker, *python_track, *none, *failed, *here, *error, *message,
        *raised;
    if (!PyArg_ParseTuple(args, "O!OO!OO!O!OOUO:use_tracker", &PyType_Type, &outlit, &track,
                          &PyType_Type, &tracker, &python_track, &PyTuple_Type, &none,
                          &PyTuple_Type, &failed, &here, &error, &message, &raised)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)tracker, &TrackerType)
        || ((PyTypeObject *)tracker)->tp_basicsize != TrackerType.tp_basicsize
        || ((PyTypeObject *)outlit)->tp_dict == NULL) {
        PyErr_SetString(PyExc_TypeError, "use_tracker needs BoundTracker built on Tracker, "
                                         "with no attributes of its own");
        return NULL;
    }
    Py_XSETREF(outlit_class, Py_NewRef(outlit));
    Py_XSETREF(outlit_track, Py_NewRef(track));
    Py_XSETREF(no_ids, Py_NewRef(none));
    Py_XSETREF(failed_ids, Py_NewRef(failed));
    Py_XSETREF(not_here, Py_NewRef(here));
    Py_XSETREF(invalid_event_error, Py_NewRef(error));
    Py_XSETREF(no_identity_message, Py_NewRef(message));
    Py_XSETREF(py_identity_raised, Py_NewRef(raised));
    Py_XSETREF(py_track, Py_NewRef(python_track));
    PyObject *resolve = PyDict_GetItemWithError(((PyTypeObject *)tracker)->tp_dict, s_resolve);
    if (resolve == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "use_tracker: BoundTracker has no _resolve");
        }
        return NULL;
    }
    Py_XSETREF(py_resolve, Py_NewRef(resolve));
    Py_XSETREF(bound_tracker_class, Py_NewRef(tracker));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"queue_track", (PyCFunction)(void (*)(void))queue_track, METH_FASTCALL,
     "queue_track(client, queue, room, wake_at, event_name, email, user_id, fingerprint, "
     "customer_id, customer_domain, properties, timestamp, /)\n--\n\n"
     "Queue the usual track() call and return True, or return False for Python to handle it."},
    {"custom_event", (PyCFunction)(void (*)(void))custom_event, METH_FASTCALL,
     "custom_event(item, uuid, /)\n--\n\nThe wire dict of a queued track() tuple."},
    {"identity_args", identity_args, METH_O,
     "identity_args(found, /)\n--\n\ntrack()'s five identity arguments from an identity answer."},
    {"take_batch", (PyCFunction)(void (*)(void))take_batch, METH_FASTCALL,
     "take_batch(queue, max_events, max_bytes, overhead, marker_type, random, /)\n"
     "--\n\n"
     "The worker's next batch: JSON bytes, and items left for Python to encode "
     "(EventQueue.take_batch, compiled)."},
    {"lookup_tracker", (PyCFunction)(void (*)(void))lookup_tracker, METH_FASTCALL,
     "lookup_tracker(client, lookup, subject, /)\n--\n\n"
     "A BoundTracker whose identity is lookup(subject), looked up when a call needs it."},
    {"use_tracker", use_tracker, METH_VARARGS,
     "use_tracker(outlit_class, outlit_track, bound_tracker, python_track, no_ids, "
     "failed_ids, not_here, error, message, identity_raised, /)\n--\n\n"
     "What Tracker.track needs from outlit._client and outlit._tracker."},
    {"in_main_interpreter", in_main_interpreter, METH_NOARGS,
     "in_main_interpreter()\n--\n\nWhether this is the interpreter the state is set up for."},
    {"use_custom_event", use_custom_event, METH_VARARGS,
     "use_custom_event(function, template, /)\n--\n\n"
     "The pure-Python custom_event and its wire-dict template."},
    {"use_identity_args", use_identity_args, METH_O,
     "use_identity_args(function, /)\n--\n\nThe pure-Python _identity_args."},
    {"use_client_globals", use_client_globals, METH_O,
     "use_client_globals(globals, /)\n--\n\noutlit._client's globals (its clock, _now)."},
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
    INTERN(s_popleft, "popleft");
    INTERN(s_appendleft, "appendleft");
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
    INTERN(s_track, "track");
    INTERN(s_queue, "_queue");
    INTERN(s_room, "_room");
    INTERN(s_wake_at, "_wake_at");
    INTERN(s_resolve, "_resolve");
    INTERN(s_note_identity_failed, "_note_identity_failed");
    for (int i = 0; i < A_COUNT; i++) {
        INTERN(track_names[i], track_names_text[i]);
    }
    if ((track_kwnames = PyTuple_New(A_COUNT)) == NULL) {
        return NULL;
    }
    for (int i = 0; i < A_COUNT; i++) {
        PyTuple_SET_ITEM(track_kwnames, i, Py_NewRef(track_names[i]));
    }
    if (PyType_Ready(&TrackerType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Tracker", (PyObject *)&TrackerType) < 0) {
        Py_DECREF(module);
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
