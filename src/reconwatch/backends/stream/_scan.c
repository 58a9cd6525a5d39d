/* Strict JSON scan of NDJSON lines for the stream's fast path: only a plan's fields are read.
 *
 * The compiled twin of the per-line loop fastpath.py generates in Python (decode with msgspec,
 * read the Struct fields, test the WHERE's equalities, route the row to its group). It returns
 * exactly what that loop would for every line it takes, and stops at the first line it is not
 * sure of (anything it would accept that msgspec would not, an escape it does not decode, a
 * duplicate or dotted key, a nesting deeper than MAX_DEPTH): the Python side then sends that
 * line through the general path, which decides and reports. Being stricter than msgspec is
 * always safe; never being looser is what tests/stream/test_scan_native.py checks.
 *
 * Values of a field are interned per field (ASCII ones up to INTERN_MAX_LEN bytes): an
 * executable or agent id repeated through a batch is one str object, hashed once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && defined(__GNUC__)
#define SCAN_SSE2 1
#include <emmintrin.h>
#endif

#define MAX_DEPTH 64
#define MAX_KEYS 64          /* keys per object level: the duplicate check is one bit each */
#define INTERN_SLOTS 4096    /* per field, cleared when half full */
#define INTERN_MAX_LEN 256
#define MAX_INT_DIGITS 18
#define MAX_FRAC_DIGITS 18
#define MAX_EXP_DIGITS 2

enum { KIND_LEAF = 0, KIND_CHILD = 1, KIND_DOTTED = 2, KIND_LONG = 3 };
enum { DECLINE = 0, OK = 1, FAIL = -1, MORE = 2 };

typedef struct Node Node;

typedef struct {
    char *name;
    Py_ssize_t len;
    int kind;
    int var;
    Node *child;
} Key;

struct Node {
    int nkeys;
    Key *keys;
    uint64_t sigs; /* key_sig of every key: most keys a line holds are not wanted, one test */
};

typedef struct {
    uint64_t hash;
    PyObject *str;
} Slot;

typedef struct {
    Slot *slots; /* NULL: this field is not interned (times are unique per event) */
    Py_ssize_t used;
} Intern;

typedef struct {
    PyObject_HEAD
    Node *root;
    int nvars;
    PyObject **vals; /* this line's values: NULL is None */
    Intern *interns;
    int ntime;
    int *time_vars;
    int neq;
    int *eq_vars;
    PyObject **eq_consts;
    int nroute;
    int *route_vars;
    int ncell;
    int *cell_vars;
    int int_times; /* canonical times go to T as epoch millis, others as the loop has them */
    char *buf; /* escaped strings are decoded here */
    Py_ssize_t bufcap;
} Scanner;

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    /* Reads up to here are in bounds (a line read in place has its buffer after it): the
     * string scan looks 16 bytes at a time and may look past `end`, never taking what it sees
     * there. */
    const unsigned char *limit;
    Scanner *s;
} Ctx;

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Bytes that continue a plain ASCII string run: not '"', '\\', a control byte or non-ASCII. */
static unsigned char PLAIN[256];

static void
init_tables(void)
{
    for (int c = 0; c < 256; c++) {
        PLAIN[c] = (c >= 0x20 && c < 0x80 && c != '"' && c != '\\');
    }
}

/* -- tree ------------------------------------------------------------------------------- */

static void
free_node(Node *node)
{
    if (node == NULL) {
        return;
    }
    for (int i = 0; i < node->nkeys; i++) {
        PyMem_Free(node->keys[i].name);
        free_node(node->keys[i].child);
    }
    PyMem_Free(node->keys);
    PyMem_Free(node);
}

/* One of 64 bits from a key's length and first byte (a filter: equal bits prove nothing). */
static inline uint64_t
key_sig(const unsigned char *name, Py_ssize_t len)
{
    return (uint64_t)1 << (((len ? name[0] : 0) * 7u + (unsigned)len) & 63u);
}

/* A level from ((key, kind, payload), ...): payload a field index, a nested level, or None. */
static Node *
build_node(PyObject *spec, int nvars)
{
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) > MAX_KEYS) {
        PyErr_SetString(PyExc_ValueError, "a level is a tuple of at most 64 keys");
        return NULL;
    }
    Node *node = PyMem_Calloc(1, sizeof(Node));
    if (node == NULL) {
        return (Node *)PyErr_NoMemory();
    }
    Py_ssize_t n = PyTuple_GET_SIZE(spec);
    node->keys = PyMem_Calloc(n ? n : 1, sizeof(Key));
    if (node->keys == NULL) {
        PyMem_Free(node);
        return (Node *)PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name, *payload;
        int kind;
        Key *key = &node->keys[i];
        node->nkeys = (int)i + 1;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, i), "UiO", &name, &kind, &payload)) {
            goto fail;
        }
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(name, &len);
        if (utf8 == NULL) {
            goto fail;
        }
        key->name = PyMem_Malloc(len ? len : 1);
        if (key->name == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        memcpy(key->name, utf8, len);
        key->len = len;
        node->sigs |= key_sig((const unsigned char *)key->name, len);
        key->kind = kind;
        key->var = -1;
        if (kind == KIND_LEAF || kind == KIND_LONG) {
            long var = PyLong_AsLong(payload);
            if (var < 0 || var >= nvars) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_ValueError, "field index out of range");
                }
                goto fail;
            }
            key->var = (int)var;
        }
        else if (kind == KIND_CHILD) {
            key->child = build_node(payload, nvars);
            if (key->child == NULL) {
                goto fail;
            }
        }
        else if (kind != KIND_DOTTED) {
            PyErr_SetString(PyExc_ValueError, "unknown key kind");
            goto fail;
        }
    }
    return node;
fail:
    free_node(node);
    return NULL;
}

/* -- interning ------------------------------------------------------------------------------ */

/* Eight bytes at a time (a multiply-xorshift mix): only for the intern table's slots. */
static uint64_t
hash_bytes(const unsigned char *data, Py_ssize_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)len, word;
    while (len >= 8) {
        memcpy(&word, data, 8);
        h = (h ^ word) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        data += 8;
        len -= 8;
    }
    if (len > 0) {
        word = 0;
        memcpy(&word, data, (size_t)len);
        h = (h ^ word) * 0xFF51AFD7ED558CCDULL;
    }
    return h ^ (h >> 29);
}

static PyObject *
new_ascii(const unsigned char *data, Py_ssize_t len)
{
    PyObject *str = PyUnicode_New(len, 127);
    if (str != NULL) {
        memcpy(PyUnicode_DATA(str), data, len);
    }
    return str;
}

static void
clear_intern(Intern *in)
{
    if (in->slots == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < INTERN_SLOTS; i++) {
        Py_CLEAR(in->slots[i].str);
    }
    in->used = 0;
}

/* A new reference to the str of an ASCII value, shared with earlier sightings when interned. */
static PyObject *
ascii_value(Intern *in, const unsigned char *data, Py_ssize_t len)
{
    if (in->slots == NULL || len > INTERN_MAX_LEN) {
        return new_ascii(data, len);
    }
    uint64_t h = hash_bytes(data, len);
    Py_ssize_t i = (Py_ssize_t)(h & (INTERN_SLOTS - 1));
    for (;;) {
        Slot *slot = &in->slots[i];
        if (slot->str == NULL) {
            break;
        }
        if (slot->hash == h && PyUnicode_GET_LENGTH(slot->str) == len &&
            memcmp(PyUnicode_DATA(slot->str), data, len) == 0) {
            Py_INCREF(slot->str);
            return slot->str;
        }
        i = (i + 1) & (INTERN_SLOTS - 1);
    }
    if (in->used >= INTERN_SLOTS / 2) {
        clear_intern(in); /* bounded memory: a field with many values starts over */
        i = (Py_ssize_t)(h & (INTERN_SLOTS - 1));
    }
    PyObject *str = new_ascii(data, len);
    if (str == NULL) {
        return NULL;
    }
    Py_INCREF(str);
    in->slots[i].hash = h;
    in->slots[i].str = str;
    in->used++;
    return str;
}

/* -- lexing ------------------------------------------------------------------------------- */

static inline void
skip_ws(Ctx *c)
{
    /* One compare for the usual answer (no whitespace between tokens of compact NDJSON). */
    while (c->p < c->end && *c->p <= ' ' &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) {
        c->p++;
    }
}

static int
hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') {
            v |= ch - '0';
        }
        else if (ch >= 'a' && ch <= 'f') {
            v |= ch - 'a' + 10;
        }
        else if (ch >= 'A' && ch <= 'F') {
            v |= ch - 'A' + 10;
        }
        else {
            return 0;
        }
    }
    *out = v;
    return 1;
}

/* Length of a valid UTF-8 sequence at p (non-ASCII lead byte), 0 when invalid or truncated. */
static int
utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char b0 = p[0];
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
    }
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        if (b0 == 0xE0) {
            lo = 0xA0;
        }
        else if (b0 == 0xED) {
            hi = 0x9F; /* no surrogates */
        }
    }
    else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        if (b0 == 0xF0) {
            lo = 0x90;
        }
        else if (b0 == 0xF4) {
            hi = 0x8F;
        }
    }
    else {
        return 0;
    }
    if (end - p < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (int i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

enum { STR_ESCAPED = 1, STR_NONASCII = 2 };

/* The first byte from p on that is not plain ('"', '\\', a control byte or non-ASCII), or a
 * pointer at or past `end` when every byte before `end` is plain. Reads stay below `limit`. */
static inline const unsigned char *
plain_run(const unsigned char *p, const unsigned char *end, const unsigned char *limit)
{
#ifdef SCAN_SSE2
    /* Sixteen bytes at a time; the signed compare below 0x20 flags control and non-ASCII
     * bytes alike. A flag found past `end` only says the string does not close before it. */
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (p < end && limit - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i hit = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
            _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(hit);
        if (mask) {
            return p + __builtin_ctz((unsigned)mask);
        }
        p += 16;
    }
#else
    (void)limit;
    /* Eight plain bytes at a time: none is '"', '\\', below 0x20 or above 0x7F. */
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t special = (w ^ (ONES * '"')) - ONES;
        special &= ~(w ^ (ONES * '"'));
        uint64_t slash = (w ^ (ONES * '\\')) - ONES;
        special |= slash & ~(w ^ (ONES * '\\'));
        special |= (w - ONES * 0x20) & ~w;
        special = (special | w) & HIGHS;
        if (special) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* The lowest flagged byte is exact (borrows only flag bytes above it). */
            p += __builtin_ctzll(special) >> 3;
#endif
            break;
        }
        p += 8;
    }
#endif
    while (p < end && PLAIN[*p]) {
        p++;
    }
    return p;
}

/* scan_string past its first byte that is not plain (at p): escapes and UTF-8 sequences. */
static int
scan_string_rest(Ctx *c, const unsigned char *p, const unsigned char *start, Py_ssize_t *len,
                 int *flags)
{
    const unsigned char *end = c->end;
    for (;; p = plain_run(p, end, c->limit)) {
        if (p >= end) {
            return DECLINE;
        }
        unsigned char ch = *p;
        if (ch == '"') {
            break;
        }
        if (ch == '\\') {
            if (end - p < 2) {
                return DECLINE;
            }
            unsigned char e = p[1];
            *flags |= STR_ESCAPED;
            if (e == 'u') {
                unsigned cp;
                if (end - p < 6 || !hex4(p + 2, &cp) || (cp >= 0xD800 && cp <= 0xDFFF)) {
                    return DECLINE;
                }
                p += 6;
            }
            else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                     e == 'r' || e == 't') {
                p += 2;
            }
            else {
                return DECLINE;
            }
            continue;
        }
        if (ch < 0x20) {
            return DECLINE;
        }
        int n = utf8_len(p, end);
        if (n == 0) {
            return DECLINE;
        }
        *flags |= STR_NONASCII;
        p += n;
    }
    *len = p - start;
    c->p = p + 1;
    return OK;
}

/* A string whose opening quote is at c->p: on OK, [*start, *start + *len) is its raw body and
 * c->p is past the closing quote. Declines control bytes, invalid UTF-8, bad escapes and
 * escaped surrogates (msgspec rejects lone ones; pairs are left to it). The common string, plain
 * ASCII to its closing quote, takes the short way: a few registers, no call. */
static inline int
scan_string(Ctx *c, const unsigned char **start, Py_ssize_t *len, int *flags)
{
    const unsigned char *body = c->p + 1;
    const unsigned char *p = plain_run(body, c->end, c->limit);
    *start = body;
    *flags = 0;
    if (p < c->end && *p == '"') {
        *len = p - body;
        c->p = p + 1;
        return OK;
    }
    return scan_string_rest(c, p, body, len, flags);
}

/* The UTF-8 of an escaped body (already validated by scan_string) in the scanner's buffer. */
static int
unescape(Scanner *s, const unsigned char *p, Py_ssize_t len, Py_ssize_t *outlen, int *ascii)
{
    if (s->bufcap < len) { /* never longer than the escaped form */
        char *grown = PyMem_Realloc(s->buf, len);
        if (grown == NULL) {
            PyErr_NoMemory();
            return FAIL;
        }
        s->buf = grown;
        s->bufcap = len;
    }
    unsigned char *o = (unsigned char *)s->buf;
    const unsigned char *end = p + len;
    *ascii = 1;
    while (p < end) {
        unsigned char ch = *p;
        if (ch != '\\') {
            if (ch >= 0x80) {
                *ascii = 0;
            }
            *o++ = ch;
            p++;
            continue;
        }
        unsigned char e = p[1];
        p += 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp;
            hex4(p, &cp);
            p += 4;
            if (cp < 0x80) {
                *o++ = (unsigned char)cp;
            }
            else if (cp < 0x800) {
                *ascii = 0;
                *o++ = (unsigned char)(0xC0 | (cp >> 6));
                *o++ = (unsigned char)(0x80 | (cp & 0x3F));
            }
            else {
                *ascii = 0;
                *o++ = (unsigned char)(0xE0 | (cp >> 12));
                *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (unsigned char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: *o++ = e; break; /* '"', '\\', '/' */
        }
    }
    *outlen = o - (unsigned char *)s->buf;
    return OK;
}

/* A new reference to a string value at c->p (a str, as msgspec would decode it). */
static int
string_value(Ctx *c, int var, PyObject **out)
{
    const unsigned char *start;
    Py_ssize_t len;
    int flags;
    int got = scan_string(c, &start, &len, &flags);
    if (got != OK) {
        return got;
    }
    Scanner *s = c->s;
    if (flags == 0) {
        *out = ascii_value(&s->interns[var], start, len);
    }
    else if (flags == STR_NONASCII) {
        *out = PyUnicode_DecodeUTF8((const char *)start, len, "strict");
    }
    else {
        Py_ssize_t outlen;
        int ascii;
        if (unescape(s, start, len, &outlen, &ascii) != OK) {
            return FAIL;
        }
        const unsigned char *data = (const unsigned char *)s->buf;
        *out = ascii ? ascii_value(&s->interns[var], data, outlen)
                     : PyUnicode_DecodeUTF8((const char *)data, outlen, "strict");
    }
    if (*out == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear(); /* not reachable past scan_string's checks; the general path decides */
        return DECLINE;
    }
    return *out == NULL ? FAIL : OK;
}

static int
scan_number(Ctx *c)
{
    const unsigned char *p = c->p, *end = c->end;
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end) {
        return DECLINE;
    }
    if (*p == '0') {
        p++;
    }
    else if (*p >= '1' && *p <= '9') {
        const unsigned char *first = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p - first > MAX_INT_DIGITS) {
            return DECLINE;
        }
    }
    else {
        return DECLINE;
    }
    if (p < end && *p == '.') {
        const unsigned char *first = ++p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == first || p - first > MAX_FRAC_DIGITS) {
            return DECLINE;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        const unsigned char *first = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == first || p - first > MAX_EXP_DIGITS) {
            return DECLINE;
        }
    }
    /* A number must end at a delimiter: `1x` or `01` (0 then 1) is not JSON. */
    if (p < end && !(*p == ',' || *p == '}' || *p == ']' || *p == ' ' || *p == '\t' ||
                     *p == '\n' || *p == '\r')) {
        return DECLINE;
    }
    c->p = p;
    return OK;
}

static int
scan_literal(Ctx *c, const char *word, Py_ssize_t len)
{
    if (c->end - c->p < len || memcmp(c->p, word, len) != 0) {
        return DECLINE;
    }
    c->p += len;
    return OK;
}

static int skip_value(Ctx *c, int depth);

/* Past an opening bracket at c->p: OK when the container is empty (and closed), MORE when a
 * member or item follows. */
static int
open_container(Ctx *c, int depth, unsigned char close)
{
    if (depth > MAX_DEPTH) {
        return DECLINE;
    }
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return OK;
    }
    return MORE;
}

/* A member's key and its colon; on OK, [*name, *name + *len) is the key's raw body. */
static int
member_key(Ctx *c, const unsigned char **name, Py_ssize_t *len, int *flags)
{
    if (c->p >= c->end || *c->p != '"' || scan_string(c, name, len, flags) != OK) {
        return DECLINE;
    }
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':') {
        return DECLINE;
    }
    c->p++;
    skip_ws(c);
    return OK;
}

/* After a member or item: the closing bracket (OK), a comma (MORE; no trailing comma allowed
 * by the next member_key or value), or not JSON. */
static int
next_member(Ctx *c, unsigned char close)
{
    skip_ws(c);
    if (c->p >= c->end) {
        return DECLINE;
    }
    if (*c->p == close) {
        c->p++;
        return OK;
    }
    if (*c->p != ',') {
        return DECLINE;
    }
    c->p++;
    skip_ws(c);
    return MORE;
}

/* Members of an object or items of an array (opening bracket at c->p), values skipped. */
static int
skip_container(Ctx *c, int depth, unsigned char close)
{
    int got = open_container(c, depth, close);
    while (got == MORE) {
        if (close == '}') {
            const unsigned char *name;
            Py_ssize_t len;
            int flags;
            if (member_key(c, &name, &len, &flags) != OK) {
                return DECLINE;
            }
        }
        got = skip_value(c, depth + 1);
        if (got == OK) {
            got = next_member(c, close);
        }
    }
    return got;
}

static int
skip_value(Ctx *c, int depth)
{
    if (c->p >= c->end) {
        return DECLINE;
    }
    switch (*c->p) {
    case '"': {
        const unsigned char *start;
        Py_ssize_t len;
        int flags;
        return scan_string(c, &start, &len, &flags);
    }
    case '{': return skip_container(c, depth, '}');
    case '[': return skip_container(c, depth, ']');
    case 't': return scan_literal(c, "true", 4);
    case 'f': return scan_literal(c, "false", 5);
    case 'n': return scan_literal(c, "null", 4);
    default: return scan_number(c);
    }
}

/* A JSON integer of at most MAX_INT_DIGITS digits (inside a long's range) as an int. */
static int
long_value(Ctx *c, PyObject **out)
{
    const unsigned char *start = c->p;
    int got = scan_number(c);
    if (got != OK) {
        return got;
    }
    long long v = 0;
    int negative = *start == '-';
    for (const unsigned char *p = start + negative; p < c->p; p++) {
        if (*p < '0' || *p > '9') {
            return DECLINE; /* a fraction or an exponent: msgspec reads a float */
        }
        v = v * 10 + (*p - '0');
    }
    *out = PyLong_FromLongLong(negative ? -v : v);
    return *out == NULL ? FAIL : OK;
}

static int
scalar_value(Ctx *c, int var, int integer, PyObject **out)
{
    if (integer) {
        return (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) ? long_value(c, out) : DECLINE;
    }
    return *c->p == '"' ? string_value(c, var, out) : DECLINE;
}

/* A wanted leaf: a string (an integer for a long), null, or a one-value array (a 1-tuple), as
 * `str | tuple[str] | None` (`int | ...`) decodes; anything else is not the fast path's. */
static int
leaf_value(Ctx *c, int var, int integer)
{
    if (c->p >= c->end) {
        return DECLINE;
    }
    PyObject **slot = &c->s->vals[var];
    unsigned char ch = *c->p;
    if (ch == 'n') {
        return scan_literal(c, "null", 4);
    }
    if (ch != '[') {
        return scalar_value(c, var, integer, slot);
    }
    c->p++;
    skip_ws(c);
    if (c->p >= c->end) {
        return DECLINE;
    }
    PyObject *item;
    int got = scalar_value(c, var, integer, &item);
    if (got != OK) {
        return got;
    }
    skip_ws(c);
    if (c->p >= c->end || *c->p != ']') {
        Py_DECREF(item);
        return DECLINE;
    }
    c->p++;
    *slot = PyTuple_New(1);
    if (*slot == NULL) {
        Py_DECREF(item);
        return FAIL;
    }
    PyTuple_SET_ITEM(*slot, 0, item);
    return OK;
}

static int
find_key(const Node *node, const unsigned char *name, Py_ssize_t len)
{
    if (!(node->sigs & key_sig(name, len))) {
        return -1;
    }
    for (int i = 0; i < node->nkeys; i++) {
        const Key *key = &node->keys[i];
        if (key->len == len && (len == 0 || key->name[0] == (char)name[0]) &&
            memcmp(key->name, name, len) == 0) {
            return i;
        }
    }
    return -1;
}

/* An object (opening brace at c->p) read through one tree level. */
static int
read_object(Ctx *c, const Node *node, int depth)
{
    uint64_t seen = 0;
    int got = open_container(c, depth, '}');
    while (got == MORE) {
        const unsigned char *name;
        Py_ssize_t len;
        int flags;
        if (member_key(c, &name, &len, &flags) != OK || (flags & STR_ESCAPED)) {
            return DECLINE; /* an escaped key could spell a wanted one: left to msgspec */
        }
        int index = find_key(node, name, len);
        if (index < 0) {
            got = skip_value(c, depth + 1);
        }
        else {
            if (seen & ((uint64_t)1 << index)) {
                return DECLINE; /* a duplicate key: msgspec keeps the last, left to it */
            }
            seen |= (uint64_t)1 << index;
            const Key *key = &node->keys[index];
            if (key->kind == KIND_LEAF || key->kind == KIND_LONG) {
                got = leaf_value(c, key->var, key->kind == KIND_LONG);
            }
            else if (c->p < c->end && *c->p == 'n') {
                got = scan_literal(c, "null", 4);
            }
            else if (key->kind == KIND_CHILD && c->p < c->end && *c->p == '{') {
                got = read_object(c, key->child, depth + 1);
            }
            else {
                got = DECLINE; /* a dotted spelling with a value, or not an object */
            }
        }
        if (got == OK) {
            got = next_member(c, '}');
        }
    }
    return got;
}

/* -- the scanner ------------------------------------------------------------------------------ */

static void
clear_vals(Scanner *s)
{
    for (int i = 0; i < s->nvars; i++) {
        Py_CLEAR(s->vals[i]);
    }
}

static int
read_span(Scanner *s, const char *data, Py_ssize_t len, const unsigned char *limit)
{
    Ctx c = {(const unsigned char *)data, (const unsigned char *)data + len, limit, s};
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') {
        return DECLINE;
    }
    int got = read_object(&c, s->root, 1);
    if (got != OK) {
        return got;
    }
    skip_ws(&c);
    return c.p == c.end ? OK : DECLINE;
}

/* The UTF-8 text of a bytes or str line; DECLINE for anything else. */
static int
line_span(PyObject *line, const char **data, Py_ssize_t *len)
{
    if (PyBytes_CheckExact(line)) {
        *data = PyBytes_AS_STRING(line);
        *len = PyBytes_GET_SIZE(line);
        return OK;
    }
    if (PyUnicode_CheckExact(line)) {
        *data = PyUnicode_AsUTF8AndSize(line, len);
        if (*data == NULL) {
            PyErr_Clear(); /* lone surrogates: the general path reports the line */
            return DECLINE;
        }
        return OK;
    }
    return DECLINE;
}

/* `x == K or x == (K,)` for a value as the loop holds it. */
static int
equals(PyObject *value, PyObject *constant)
{
    if (value == NULL) {
        return 0;
    }
    if (PyTuple_CheckExact(value)) {
        value = PyTuple_GET_ITEM(value, 0);
    }
    return value == constant || PyUnicode_Compare(value, constant) == 0;
}

static PyObject *
or_none(PyObject *value)
{
    return value == NULL ? Py_None : value;
}

static PyObject *
values_tuple(Scanner *s, const int *vars, int n, Py_ssize_t first, PyObject *lead)
{
    PyObject *tuple = PyTuple_New(first + n);
    if (tuple == NULL) {
        return NULL;
    }
    if (first) {
        PyTuple_SET_ITEM(tuple, 0, lead); /* steals */
    }
    for (int k = 0; k < n; k++) {
        PyObject *value = or_none(s->vals[vars[k]]);
        Py_INCREF(value);
        PyTuple_SET_ITEM(tuple, first + k, value);
    }
    return tuple;
}

static int
digits(const unsigned char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

/* Epoch millis of `YYYY-MM-DDThh:mm:ss.fffZ` (executor._iso_millis's spelling and checks:
 * a real date from year 1, hours to 23, minutes and seconds to 59); 0 for anything else. */
static int
iso_millis(PyObject *text, long long *out)
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_COMPACT_ASCII(text) ||
        PyUnicode_GET_LENGTH(text) != 24) {
        return 0;
    }
    const unsigned char *p = PyUnicode_DATA(text);
    int y, mo, d, h, mi, sec, ms;
    if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':' ||
        p[19] != '.' || p[23] != 'Z' || !digits(p, 4, &y) || !digits(p + 5, 2, &mo) ||
        !digits(p + 8, 2, &d) || !digits(p + 11, 2, &h) || !digits(p + 14, 2, &mi) ||
        !digits(p + 17, 2, &sec) || !digits(p + 20, 3, &ms)) {
        return 0;
    }
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
        d > month_days[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || sec > 59) {
        return 0;
    }
    /* Days since 1970-01-01 of a proleptic Gregorian date (civil-from-days inverted). */
    long long yy = y - (mo <= 2);
    long long era = yy / 400; /* yy >= 0 */
    long long yoe = yy - era * 400;
    long long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long long days = era * 146097 + doe - 719468;
    *out = ((days * 24 + h) * 60 + mi) * 60000LL + sec * 1000LL + ms;
    return 1;
}

/* One taken line: its time appended to T, its row to its group's pending list in P. */
static int
place(Scanner *s, Py_ssize_t i, PyObject *P, PyObject *B, PyObject *T, PyObject *route)
{
    PyObject *time = NULL;
    for (int k = 0; k < s->ntime && time == NULL; k++) {
        time = s->vals[s->time_vars[k]];
    }
    long long ms;
    if (s->int_times && time != NULL && iso_millis(time, &ms)) {
        PyObject *converted = PyLong_FromLongLong(ms);
        if (converted == NULL || PyList_Append(T, converted) < 0) {
            Py_XDECREF(converted);
            return FAIL;
        }
        Py_DECREF(converted);
    }
    else if (PyList_Append(T, or_none(time)) < 0) {
        return FAIL;
    }
    for (int k = 0; k < s->neq; k++) {
        if (!equals(s->vals[s->eq_vars[k]], s->eq_consts[k])) {
            return OK;
        }
    }
    PyObject *lookup;
    if (s->nroute == 1) {
        lookup = or_none(s->vals[s->route_vars[0]]);
        Py_INCREF(lookup);
    }
    else {
        lookup = values_tuple(s, s->route_vars, s->nroute, 0, NULL);
        if (lookup == NULL) {
            return FAIL;
        }
    }
    /* B (lookup -> group key, or False when the WHERE rejects) outlives the batch; the route
     * callback fills it on a miss. P (group key -> pending rows) is the batch's. */
    PyObject *key = PyDict_GetItemWithError(B, lookup);
    if (key != NULL) {
        Py_INCREF(key);
    }
    else if (PyErr_Occurred()) {
        Py_DECREF(lookup);
        return FAIL;
    }
    else {
        PyObject *combo = values_tuple(s, s->route_vars, s->nroute, 0, NULL);
        if (combo == NULL) {
            Py_DECREF(lookup);
            return FAIL;
        }
        key = PyObject_CallFunctionObjArgs(route, combo, B, lookup, NULL);
        Py_DECREF(combo);
        if (key == NULL) {
            Py_DECREF(lookup);
            return FAIL;
        }
    }
    Py_DECREF(lookup);
    int status = OK;
    if (key != Py_False) {
        PyObject *rows = PyDict_GetItemWithError(P, key); /* borrowed: P holds it */
        if (rows == NULL && !PyErr_Occurred()) {
            rows = PyList_New(0);
            if (rows != NULL) {
                int set = PyDict_SetItem(P, key, rows);
                Py_DECREF(rows);
                rows = set < 0 ? NULL : rows;
            }
        }
        PyObject *index = rows == NULL ? NULL : PyLong_FromSsize_t(i);
        PyObject *row = index == NULL ? NULL : values_tuple(s, s->cell_vars, s->ncell, 1, index);
        if (row == NULL || PyList_Append(rows, row) < 0) {
            status = FAIL;
        }
        Py_XDECREF(row);
    }
    Py_DECREF(key);
    return status;
}

/* Line i of a batch: read and placed (OK), or not the fast path's (DECLINE), or FAIL. Bytes
 * from data up to `limit` (at least data + len) may be read. */
static int
take(Scanner *s, Py_ssize_t i, const char *data, Py_ssize_t len, const char *limit, PyObject *P,
     PyObject *B, PyObject *T, PyObject *route)
{
    int status = read_span(s, data, len, (const unsigned char *)limit);
    if (status == OK) {
        status = place(s, i, P, B, T, route);
    }
    clear_vals(s);
    return status;
}

static PyObject *
Scanner_scan(Scanner *s, PyObject *args)
{
    PyObject *lines, *P, *B, *T, *route;
    if (!PyArg_ParseTuple(args, "OO!O!O!O:scan", &lines, &PyDict_Type, &P, &PyDict_Type, &B,
                          &PyList_Type, &T, &route)) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(lines, "lines must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), i = 0;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    int status = OK;
    for (; i < n; i++) {
        const char *data;
        Py_ssize_t len;
        status = line_span(items[i], &data, &len);
        if (status == OK) {
            status = take(s, i, data, len, data + len, P, B, T, route);
        }
        if (status != OK) {
            break;
        }
    }
    Py_DECREF(seq);
    if (status == FAIL) {
        return NULL;
    }
    return PyLong_FromSsize_t(i);
}

/* Line k of `buf` is [starts[k], starts[k + 1] - 1): its newline excluded. */
static PyObject *
Scanner_scan_lines(Scanner *s, PyObject *args)
{
    PyObject *P, *B, *T, *route;
    Py_buffer buf, starts;
    Py_ssize_t first, count;
    if (!PyArg_ParseTuple(args, "y*y*nnO!O!O!O:scan_lines", &buf, &starts, &first, &count,
                          &PyDict_Type, &P, &PyDict_Type, &B, &PyList_Type, &T, &route)) {
        return NULL;
    }
    PyObject *result = NULL;
    const int64_t *at = starts.buf;
    Py_ssize_t nstarts = starts.len / (Py_ssize_t)sizeof(int64_t);
    if (first < 0 || count < 0 || first + count >= nstarts) {
        PyErr_SetString(PyExc_IndexError, "lines out of range");
        goto done;
    }
    Py_ssize_t i = 0;
    int status = OK;
    for (; i < count; i++) {
        int64_t lo = at[first + i], hi = at[first + i + 1] - 1;
        if (lo < 0 || hi < lo || hi > buf.len) {
            PyErr_SetString(PyExc_ValueError, "line offsets outside the buffer");
            goto done;
        }
        status = take(s, i, (const char *)buf.buf + lo, (Py_ssize_t)(hi - lo),
                      (const char *)buf.buf + buf.len, P, B, T, route);
        if (status != OK) {
            break;
        }
    }
    if (status != FAIL) {
        result = PyLong_FromSsize_t(i);
    }
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&starts);
    return result;
}

/* Native int64 start offsets of the lines of buf[0:end] (which ends with a newline), and end. */
static PyObject *
line_starts(PyObject *module, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t end;
    if (!PyArg_ParseTuple(args, "y*n:line_starts", &buf, &end)) {
        return NULL;
    }
    PyObject *out = NULL;
    const char *data = buf.buf;
    if (end < 0 || end > buf.len || (end > 0 && data[end - 1] != '\n')) {
        PyErr_SetString(PyExc_ValueError, "the lines must end with a newline");
        goto done;
    }
    Py_ssize_t n = 0;
    for (const char *p = data; p < data + end; n++) {
        p = (const char *)memchr(p, '\n', (size_t)(data + end - p)) + 1;
    }
    out = PyBytes_FromStringAndSize(NULL, (n + 1) * (Py_ssize_t)sizeof(int64_t));
    if (out == NULL) {
        goto done;
    }
    int64_t *at = (int64_t *)PyBytes_AS_STRING(out);
    const char *p = data;
    for (Py_ssize_t k = 0; k < n; k++) {
        at[k] = p - data;
        p = (const char *)memchr(p, '\n', (size_t)(data + end - p)) + 1;
    }
    at[n] = end;
done:
    PyBuffer_Release(&buf);
    return out;
}

enum { BLOCK_CR_OR_US = 1, BLOCK_NONASCII = 2 };

/* What the batch reader looks for in a block of lines before it reads them, in one pass:
 * BLOCK_CR_OR_US for a carriage return or 0x1f byte in buf[0:end], BLOCK_NONASCII for a byte
 * above 0x7f (then its UTF-8 is checked: bytes.find twice and bytes.isascii, in Python). */
static PyObject *
block_bytes(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t end;
    if (!PyArg_ParseTuple(args, "y*n:block_bytes", &buf, &end)) {
        return NULL;
    }
    if (end < 0 || end > buf.len) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "end outside the buffer");
        return NULL;
    }
    const unsigned char *p = buf.buf, *stop = p + end;
    int found = 0;
#ifdef SCAN_SSE2
    const __m128i cr = _mm_set1_epi8('\r'), us = _mm_set1_epi8(0x1f);
    while (stop - p >= 64 && found != (BLOCK_CR_OR_US | BLOCK_NONASCII)) {
        __m128i odd = _mm_setzero_si128(), high = _mm_setzero_si128();
        for (int k = 0; k < 64; k += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + k));
            odd = _mm_or_si128(odd, _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, us)));
            high = _mm_or_si128(high, v);
        }
        found |= (_mm_movemask_epi8(odd) ? BLOCK_CR_OR_US : 0) |
                 (_mm_movemask_epi8(high) ? BLOCK_NONASCII : 0);
        p += 64;
    }
#endif
    for (; p < stop; p++) {
        found |= (*p == '\r' || *p == 0x1f) ? BLOCK_CR_OR_US : 0;
        found |= *p >= 0x80 ? BLOCK_NONASCII : 0;
    }
    PyBuffer_Release(&buf);
    return PyLong_FromLong(found);
}

static PyObject *
Scanner_clear(Scanner *s, PyObject *Py_UNUSED(ignored))
{
    for (int k = 0; k < s->nvars; k++) {
        clear_intern(&s->interns[k]);
    }
    Py_RETURN_NONE;
}

static int
int_array(PyObject *seq, int nvars, int **out, int *count)
{
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of field indices");
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    *out = PyMem_Calloc(n ? n : 1, sizeof(int));
    if (*out == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        long var = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, k));
        if (var < 0 || var >= nvars) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "field index out of range");
            }
            Py_DECREF(fast);
            return -1;
        }
        (*out)[k] = (int)var;
    }
    *count = (int)n;
    Py_DECREF(fast);
    return 0;
}

static void
Scanner_dealloc(Scanner *s)
{
    free_node(s->root);
    if (s->vals != NULL) {
        clear_vals(s);
        PyMem_Free(s->vals);
    }
    if (s->interns != NULL) {
        for (int k = 0; k < s->nvars; k++) {
            clear_intern(&s->interns[k]);
            PyMem_Free(s->interns[k].slots);
        }
        PyMem_Free(s->interns);
    }
    for (int k = 0; k < s->neq; k++) {
        Py_XDECREF(s->eq_consts[k]);
    }
    PyMem_Free(s->eq_consts);
    PyMem_Free(s->eq_vars);
    PyMem_Free(s->time_vars);
    PyMem_Free(s->route_vars);
    PyMem_Free(s->cell_vars);
    PyMem_Free(s->buf);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* Scanner(tree, nvars, time_vars, equalities, route_vars, cell_vars, interned, int_times) */
static int
Scanner_init(Scanner *s, PyObject *args, PyObject *kwds)
{
    PyObject *tree, *time_vars, *equalities, *route_vars, *cell_vars, *untimed;
    int nvars;
    static char *names[] = {"tree", "nvars", "time_vars", "equalities", "route_vars",
                            "cell_vars", "interned", "int_times", NULL};
    if (s->root != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is configured once");
        return -1;
    }
    int int_times = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiOOOOO|p:Scanner", names, &tree, &nvars,
                                     &time_vars, &equalities, &route_vars, &cell_vars,
                                     &untimed, &int_times)) {
        return -1;
    }
    if (nvars < 1 || nvars > 4096) {
        PyErr_SetString(PyExc_ValueError, "nvars out of range");
        return -1;
    }
    s->nvars = nvars;
    s->int_times = int_times;
    s->vals = PyMem_Calloc(nvars, sizeof(PyObject *));
    s->interns = PyMem_Calloc(nvars, sizeof(Intern));
    if (s->vals == NULL || s->interns == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->root = build_node(tree, nvars);
    if (s->root == NULL) {
        return -1;
    }
    int ninterned, *interned;
    if (int_array(time_vars, nvars, &s->time_vars, &s->ntime) < 0 ||
        int_array(route_vars, nvars, &s->route_vars, &s->nroute) < 0 ||
        int_array(cell_vars, nvars, &s->cell_vars, &s->ncell) < 0 ||
        int_array(untimed, nvars, &interned, &ninterned) < 0) {
        return -1;
    }
    for (int k = 0; k < ninterned; k++) {
        Intern *in = &s->interns[interned[k]];
        if (in->slots == NULL) {
            in->slots = PyMem_Calloc(INTERN_SLOTS, sizeof(Slot));
            if (in->slots == NULL) {
                PyMem_Free(interned);
                PyErr_NoMemory();
                return -1;
            }
        }
    }
    PyMem_Free(interned);
    if (s->ntime < 1) {
        PyErr_SetString(PyExc_ValueError, "a time field is needed");
        return -1;
    }
    PyObject *fast = PySequence_Fast(equalities, "equalities must be a sequence");
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    s->eq_vars = PyMem_Calloc(n ? n : 1, sizeof(int));
    s->eq_consts = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    if (s->eq_vars == NULL || s->eq_consts == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        int var;
        PyObject *constant;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, k), "iU", &var, &constant) ||
            var < 0 || var >= nvars) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "field index out of range");
            }
            Py_DECREF(fast);
            return -1;
        }
        Py_INCREF(constant);
        s->eq_vars[k] = var;
        s->eq_consts[k] = constant;
        s->neq = (int)k + 1;
    }
    Py_DECREF(fast);
    return 0;
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS,
     "scan(lines, P, B, T, route) -> index of the first line not taken"},
    {"scan_lines", (PyCFunction)Scanner_scan_lines, METH_VARARGS,
     "scan_lines(buf, starts, first, count, P, B, T, route): scan over lines in a buffer"},
    {"clear", (PyCFunction)Scanner_clear, METH_NOARGS, "Forget the interned values."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "reconwatch.backends.stream._scan.Scanner",
    .tp_doc = "Strict JSON scan of NDJSON lines into a plan's pending rows.",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static PyMethodDef module_methods[] = {
    {"line_starts", line_starts, METH_VARARGS,
     "line_starts(buf, end) -> packed int64 start offsets of buf[:end]'s lines, then end"},
    {"block_bytes", block_bytes, METH_VARARGS,
     "block_bytes(buf, end) -> 1 if buf[:end] holds a CR or 0x1f byte, | 2 if a non-ASCII one"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_methods = module_methods,
    .m_name = "reconwatch.backends.stream._scan",
    .m_doc = "Compiled line scan for the stream's fast path (optional; fastpath.py has the "
             "Python twin).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    init_tables();
    if (PyType_Ready(&ScannerType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&scan_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&ScannerType);
    if (PyModule_AddObject(module, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(&ScannerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
