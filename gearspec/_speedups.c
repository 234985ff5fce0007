/* The hot path in C: an optional accelerator for gearspec.codec.Decoder (DecoderCore), which
 * is also the reference server's request framer. Bytes in, packets out: no handler, nothing
 * that exists for one user of the codec.
 *
 * It knows nothing of the protocol by itself. gearspec.accelerated hands it the same per-type
 * plans its pure-Python fast path uses (gearspec.plans, derived from gearspec.spec.PACKETS;
 * read by field name at set-up), the NUMBER rule as a byte table and the large-payload
 * threshold (gearspec.plans.NUMBER_BYTES and LARGE_PAYLOAD), and it does
 * only what that fast path does: frame complete, well-formed binary packets and split their
 * arguments. Everything else -- an admin line, any flaw, the end of the stream, a sticky
 * error, lenient mode's raw packets -- is handed to the pure-Python decoder (the subclass's
 * `_slow_next`), which decides from scratch and words the error. So both builds decode
 * every stream to the same events and errors; tests/core checks that they agree.
 *
 * Bytes are held in one of two ways: a received `bytes` object read in place (no copy while
 * whole packets are decoded straight out of it), or an owned buffer once a packet straddles
 * two receives. A large packet with bulk data is assembled instead: once its leading
 * arguments are in, its data argument is allocated whole and every receive is copied
 * straight into it, so bulk bytes are copied once, not into a buffer and out again.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

#define HEADER_SIZE 12
#define MAX_CODE 64  /* packet types are 0..42; anything from 64 up has no plan */
#define MAX_NUMBERS 8

typedef struct {
    PyObject *magic;   /* the Magic member (borrowed from the plans dict, kept alive by it) */
    PyObject *ptype;   /* the PacketType member */
    int nargs;
    int has_data;
    int nnumbers;
    int numbers[MAX_NUMBERS];
} Plan;

typedef struct {
    PyObject_HEAD
    /* configuration (from _core_setup) */
    PyObject *plans_dict;            /* keeps the plan tuples alive */
    Plan *plans[2][MAX_CODE];        /* [0]: "\0REQ", [1]: "\0RES"; NULL: no fast plan */
    Plan plan_storage[2][MAX_CODE];
    int accepts[2];                  /* which magics any plan uses (for waiting on a partial header) */
    Py_ssize_t limit;                /* maximum payload size */
    Py_ssize_t large;                /* payload size from which a straddling packet is assembled */
    unsigned char number_ok[256];    /* the NUMBER rule: which bytes are digits */
    PyTypeObject *packet_type;
    Py_ssize_t off_magic, off_type, off_args;  /* Packet's slot offsets */
    PyObject *need_data, *closed;    /* the NEED_DATA and CLOSED sentinels */
    PyObject *slow_name;             /* "_slow_next" */
    PyObject *receive_name;          /* "_py_receive_data" */
    int configured;
    /* state */
    int python_mode;                 /* the pure-Python decoder holds the bytes */
    int eof;
    PyObject *chunk;                 /* bytes read in place, or NULL */
    char *own;                       /* owned buffer, used when chunk is NULL */
    Py_ssize_t own_len, own_cap;
    Py_ssize_t pos;                  /* next undecoded byte in the current data */
    Py_ssize_t base;                 /* stream offset of the current data's first byte */
    /* a large packet being assembled (then the current data is empty) */
    PyObject *asm_data;              /* its data argument, being filled; NULL: none */
    PyObject *asm_prefix;            /* its header and leading arguments, as received */
    PyObject *asm_args;              /* its leading arguments */
    Plan *asm_plan;
    Py_ssize_t asm_filled, asm_start;
    /* a packet completed by receive_data, not yet returned */
    PyObject *ready;
    Py_ssize_t ready_start, ready_len;
} Core;

static const char MAGIC_REQ[4] = {0, 'R', 'E', 'Q'};
static const char MAGIC_RES[4] = {0, 'R', 'E', 'S'};

static inline const char *
data_ptr(Core *self, Py_ssize_t *len)
{
    if (self->chunk != NULL) {
        *len = PyBytes_GET_SIZE(self->chunk);
        return PyBytes_AS_STRING(self->chunk);
    }
    *len = self->own_len;
    return self->own;
}

static inline uint32_t
be32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | (uint32_t)u[3];
}

static void
clear_assembly(Core *self)
{
    Py_CLEAR(self->asm_data);
    Py_CLEAR(self->asm_prefix);
    Py_CLEAR(self->asm_args);
    self->asm_plan = NULL;
    self->asm_filled = 0;
}

static void
reset_data(Core *self)
{
    Py_CLEAR(self->chunk);
    self->own_len = 0;
    self->pos = 0;
}

/* Make room for `extra` more bytes in the owned buffer, dropping decoded bytes first. */
static int
own_reserve(Core *self, Py_ssize_t extra)
{
    if (self->pos) {
        Py_ssize_t left = self->own_len - self->pos;
        if (left)
            memmove(self->own, self->own + self->pos, (size_t)left);
        self->base += self->pos;
        self->own_len = left;
        self->pos = 0;
    }
    if (self->own_len + extra > self->own_cap) {
        Py_ssize_t cap = self->own_cap ? self->own_cap : 4096;
        while (cap < self->own_len + extra) {
            if (cap > PY_SSIZE_T_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
            cap *= 2;
        }
        char *grown = PyMem_Realloc(self->own, (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->own = grown;
        self->own_cap = cap;
    }
    return 0;
}

/* Append bytes after the undecoded ones, moving a chunk read in place into the owned buffer. */
static int
append(Core *self, const char *bytes, Py_ssize_t len)
{
    if (self->chunk != NULL) {
        Py_ssize_t clen = PyBytes_GET_SIZE(self->chunk);
        Py_ssize_t left = clen - self->pos;
        self->base += self->pos;
        self->own_len = 0;
        self->pos = 0;
        if (own_reserve(self, left + len) < 0)
            return -1;
        memcpy(self->own, PyBytes_AS_STRING(self->chunk) + (clen - left), (size_t)left);
        self->own_len = left;
        Py_CLEAR(self->chunk);
    }
    else if (own_reserve(self, len) < 0)
        return -1;
    memcpy(self->own + self->own_len, bytes, (size_t)len);
    self->own_len += len;
    return 0;
}

static void
Core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    clear_assembly(self);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->chunk);
    Py_CLEAR(self->plans_dict);
    Py_CLEAR(self->packet_type);
    Py_CLEAR(self->need_data);
    Py_CLEAR(self->closed);
    Py_CLEAR(self->slow_name);
    Py_CLEAR(self->receive_name);
    PyMem_Free(self->own);
    self->own = NULL;
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int
Core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(self->chunk);
    Py_VISIT(self->ready);
    Py_VISIT(self->asm_args);
    Py_VISIT(self->plans_dict);
    Py_VISIT(self->packet_type);
    Py_VISIT(self->need_data);
    Py_VISIT(self->closed);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
Core_clear(Core *self)
{
    Py_CLEAR(self->chunk);
    Py_CLEAR(self->ready);
    clear_assembly(self);
    Py_CLEAR(self->plans_dict);
    Py_CLEAR(self->packet_type);
    Py_CLEAR(self->need_data);
    Py_CLEAR(self->closed);
    return 0;
}

/* An int field of a gearspec.plans.Plan, by name. */
static int
plan_int(PyObject *obj, const char *name, long *out)
{
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value == NULL)
        return -1;
    *out = PyLong_AsLong(value);
    Py_DECREF(value);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* One packet type's plan from a gearspec.plans.Plan, read by field name. magic and ptype
 * are borrowed: the caller keeps the Python plans alive. */
static int
fill_plan(Plan *plan, PyObject *obj)
{
    long nargs, has_data;
    if (plan_int(obj, "nargs", &nargs) < 0 || plan_int(obj, "has_data", &has_data) < 0)
        return -1;
    PyObject *numbers = PyObject_GetAttrString(obj, "numbers");
    if (numbers == NULL)
        return -1;
    Py_DECREF(numbers);  /* the plan holds it */
    if (!PyTuple_Check(numbers)) {
        PyErr_SetString(PyExc_TypeError, "plan.numbers must be a tuple");
        return -1;
    }
    Py_ssize_t nn = PyTuple_GET_SIZE(numbers);
    if (nn > MAX_NUMBERS || nargs < 0 || nargs > 64) {
        PyErr_SetString(PyExc_ValueError, "plan out of range");
        return -1;
    }
    plan->magic = PyObject_GetAttrString(obj, "magic");
    if (plan->magic == NULL)
        return -1;
    Py_DECREF(plan->magic);
    plan->ptype = PyObject_GetAttrString(obj, "type");
    if (plan->ptype == NULL)
        return -1;
    Py_DECREF(plan->ptype);
    plan->nargs = (int)nargs;
    plan->has_data = has_data != 0;
    plan->nnumbers = (int)nn;
    for (Py_ssize_t j = 0; j < nn; j++) {
        long idx = PyLong_AsLong(PyTuple_GET_ITEM(numbers, j));
        if (idx < 0 || idx >= nargs) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "number index out of range");
            return -1;
        }
        plan->numbers[j] = (int)idx;
    }
    return 0;
}

static Py_ssize_t
slot_offset(PyTypeObject *type, const char *name)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);  /* borrowed */
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not an object slot", type->tp_name, name);
        return -1;
    }
    return member->offset;
}

/* The NUMBER rule's byte table (gearspec.plans.NUMBER_BYTES) into `table`. */
static int
read_number_table(unsigned char table[256], const char *bytes, Py_ssize_t len)
{
    if (len != 256) {
        PyErr_SetString(PyExc_ValueError, "the number table has 256 entries");
        return -1;
    }
    for (int b = 0; b < 256; b++)
        table[b] = bytes[b] != 0;
    return 0;
}

/* The NUMBER rule: one or more bytes, each a digit by the table. */
static inline int
is_number(const unsigned char table[256], const char *s, Py_ssize_t len)
{
    if (len == 0)
        return 0;
    for (Py_ssize_t k = 0; k < len; k++)
        if (!table[(unsigned char)s[k]])
            return 0;
    return 1;
}

/* _core_setup(plans, limit, packet_type, need_data, closed, number_bytes, large): plans maps
 * the first 8 header bytes read as a big-endian integer to a gearspec.plans.Plan. */
static PyObject *
Core_setup(Core *self, PyObject *args)
{
    PyObject *plans, *packet_type, *need_data, *closed;
    Py_ssize_t limit, large, number_len;
    const char *number_bytes;
    if (!PyArg_ParseTuple(args, "O!nO!OOy#n:_core_setup", &PyDict_Type, &plans, &limit,
                          &PyType_Type, &packet_type, &need_data, &closed, &number_bytes, &number_len, &large))
        return NULL;
    if (read_number_table(self->number_ok, number_bytes, number_len) < 0)
        return NULL;
    PyTypeObject *ptype = (PyTypeObject *)packet_type;
    Py_ssize_t om = slot_offset(ptype, "magic"), ot = slot_offset(ptype, "type"), oa = slot_offset(ptype, "args");
    if (om < 0 || ot < 0 || oa < 0)
        return NULL;
    memset(self->plans, 0, sizeof(self->plans));
    self->accepts[0] = self->accepts[1] = 0;
    PyObject *key, *value;
    Py_ssize_t i = 0;
    while (PyDict_Next(plans, &i, &key, &value)) {
        unsigned long long k = PyLong_AsUnsignedLongLong(key);
        if (k == (unsigned long long)-1 && PyErr_Occurred())
            return NULL;
        unsigned int magic = (unsigned int)(k >> 32), code = (unsigned int)(k & 0xffffffffu);
        int m;
        if (magic == be32(MAGIC_REQ))
            m = 0;
        else if (magic == be32(MAGIC_RES))
            m = 1;
        else
            continue;
        if (code >= MAX_CODE)
            continue;
        Plan *plan = &self->plan_storage[m][code];
        if (fill_plan(plan, value) < 0)
            return NULL;
        self->plans[m][code] = plan;
        self->accepts[m] = 1;
    }
    Py_INCREF(plans);
    Py_XSETREF(self->plans_dict, plans);
    Py_INCREF(packet_type);
    Py_XSETREF(self->packet_type, ptype);
    Py_INCREF(need_data);
    Py_XSETREF(self->need_data, need_data);
    Py_INCREF(closed);
    Py_XSETREF(self->closed, closed);
    if (self->slow_name == NULL) {
        self->slow_name = PyUnicode_InternFromString("_slow_next");
        self->receive_name = PyUnicode_InternFromString("_py_receive_data");
        if (self->slow_name == NULL || self->receive_name == NULL)
            return NULL;
    }
    self->off_magic = om;
    self->off_type = ot;
    self->off_args = oa;
    self->limit = limit;
    self->large = large;
    self->configured = 1;
    Py_RETURN_NONE;
}

static PyObject *
Core_set_limit(Core *self, PyObject *arg)
{
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit == -1 && PyErr_Occurred())
        return NULL;
    self->limit = limit;
    Py_RETURN_NONE;
}

static PyObject *make_packet(Core *self, Plan *plan, PyObject *args);

/* Copy received bytes into the packet being assembled; once it is whole it waits in
 * self->ready, and the rest of the receive becomes the current data. */
static int
assemble(Core *self, PyObject *data, Py_buffer *view)
{
    Py_ssize_t total = PyBytes_GET_SIZE(self->asm_data);
    Py_ssize_t take = total - self->asm_filled;
    if (take > view->len)
        take = view->len;
    memcpy(PyBytes_AS_STRING(self->asm_data) + self->asm_filled, view->buf, (size_t)take);
    self->asm_filled += take;
    Py_ssize_t first = self->base;  /* stream offset of the received bytes */
    self->base += take;
    if (self->asm_filled < total)
        return 0;
    Py_ssize_t lead = PyTuple_GET_SIZE(self->asm_args);
    PyObject *args = PyTuple_New(lead + 1);
    if (args == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < lead; i++) {
        PyObject *arg = PyTuple_GET_ITEM(self->asm_args, i);
        Py_INCREF(arg);
        PyTuple_SET_ITEM(args, i, arg);
    }
    PyTuple_SET_ITEM(args, lead, self->asm_data);  /* the reference is handed over */
    self->asm_data = NULL;
    PyObject *packet = make_packet(self, self->asm_plan, args);
    if (packet == NULL) {
        clear_assembly(self);
        return -1;
    }
    self->ready = packet;
    self->ready_start = self->asm_start;
    self->ready_len = PyBytes_GET_SIZE(self->asm_prefix) + total;
    clear_assembly(self);
    Py_ssize_t rest = view->len - take;
    if (rest) {
        if (PyBytes_CheckExact(data)) {
            Py_INCREF(data);
            self->chunk = data;
            self->pos = take;
            self->base = first;
        }
        else {
            self->own_len = 0;
            self->pos = 0;
            self->base = first + take;
            if (append(self, (const char *)view->buf + take, rest) < 0)
                return -1;
        }
    }
    return 0;
}

/* A large packet with bulk data is not all here: if its leading arguments are, and pass the
 * checks, start assembling it (1); otherwise leave it to wait as it is (0). */
static int
start_assembly(Core *self, Plan *plan, const char *h, Py_ssize_t avail, Py_ssize_t size)
{
    int n = plan->nargs;
    if (n < 1 || n > 64)
        return 0;
    const char *payload = h + HEADER_SIZE, *at = payload, *end = payload + (avail - HEADER_SIZE);
    const char *starts[64];
    Py_ssize_t lens[64];
    for (int i = 0; i < n - 1; i++) {
        const char *cut = memchr(at, 0, (size_t)(end - at));
        if (cut == NULL)
            return 0;
        starts[i] = at;
        lens[i] = cut - at;
        at = cut + 1;
    }
    for (int j = 0; j < plan->nnumbers; j++) {
        int i = plan->numbers[j];
        if (i == n - 1 || !is_number(self->number_ok, starts[i], lens[i]))
            return 0;
    }
    Py_ssize_t lead = at - payload, got = end - at;
    PyObject *args = PyTuple_New(n - 1);
    if (args == NULL)
        return -1;
    for (int i = 0; i < n - 1; i++) {
        PyObject *arg = PyBytes_FromStringAndSize(starts[i], lens[i]);
        if (arg == NULL) {
            Py_DECREF(args);
            return -1;
        }
        PyTuple_SET_ITEM(args, i, arg);
    }
    PyObject *prefix = PyBytes_FromStringAndSize(h, HEADER_SIZE + lead);
    PyObject *data = PyBytes_FromStringAndSize(NULL, size - lead);
    if (prefix == NULL || data == NULL) {
        Py_DECREF(args);
        Py_XDECREF(prefix);
        Py_XDECREF(data);
        return -1;
    }
    memcpy(PyBytes_AS_STRING(data), at, (size_t)got);
    self->asm_args = args;
    self->asm_prefix = prefix;
    self->asm_data = data;
    self->asm_plan = plan;
    self->asm_filled = got;
    self->asm_start = self->base + self->pos;
    /* Everything received is this packet's now. */
    Py_ssize_t len;
    data_ptr(self, &len);
    self->base += len;
    Py_CLEAR(self->chunk);
    self->own_len = 0;
    self->pos = 0;
    return 1;
}

static PyObject *
Core_receive_data(Core *self, PyObject *data)
{
    if (!self->configured) {
        PyErr_SetString(PyExc_RuntimeError, "decoder not set up");
        return NULL;
    }
    if (self->python_mode)
        return PyObject_CallMethodOneArg((PyObject *)self, self->receive_name, data);
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len == 0) {
        PyBuffer_Release(&view);
        self->eof = 1;
        Py_RETURN_NONE;
    }
    if (self->eof) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "received data after end of stream");
        return NULL;
    }
    if (self->asm_data != NULL) {
        int rc = assemble(self, data, &view);
        PyBuffer_Release(&view);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    Py_ssize_t len;
    data_ptr(self, &len);
    if (self->pos == len && PyBytes_CheckExact(data)) {
        /* Everything before was decoded: read the new bytes in place. */
        self->base += len;
        Py_CLEAR(self->chunk);
        self->own_len = 0;
        self->pos = 0;
        Py_INCREF(data);
        self->chunk = data;
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    int rc = append(self, view.buf, view.len);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
make_packet(Core *self, Plan *plan, PyObject *args)
{
    PyObject *packet = self->packet_type->tp_alloc(self->packet_type, 0);
    if (packet == NULL) {
        Py_DECREF(args);
        return NULL;
    }
    Py_INCREF(plan->magic);
    Py_INCREF(plan->ptype);
    *(PyObject **)((char *)packet + self->off_magic) = plan->magic;
    *(PyObject **)((char *)packet + self->off_type) = plan->ptype;
    *(PyObject **)((char *)packet + self->off_args) = args;  /* the reference is handed over */
    return packet;
}

/* A complete payload's arguments as a new tuple, split and checked as the plan
 * says. NULL without an exception set: a flaw, for the slow path to judge. */
static PyObject *
split_payload(const Plan *plan, const unsigned char number_ok[256], const char *payload, Py_ssize_t size)
{
    int n = plan->nargs;
    if (n == 0)
        return size ? NULL : PyTuple_New(0);
    const char *starts[64];
    Py_ssize_t lens[64];
    if (n > 64)
        return NULL;
    const char *at = payload, *end = payload + size;
    for (int i = 0; i < n - 1; i++) {
        const char *cut = memchr(at, 0, (size_t)(end - at));
        if (cut == NULL)
            return NULL;  /* too few arguments */
        starts[i] = at;
        lens[i] = cut - at;
        at = cut + 1;
    }
    starts[n - 1] = at;
    lens[n - 1] = end - at;
    if (!plan->has_data && memchr(at, 0, (size_t)(end - at)) != NULL)
        return NULL;  /* too many arguments */
    for (int j = 0; j < plan->nnumbers; j++) {
        int i = plan->numbers[j];
        if (!is_number(number_ok, starts[i], lens[i]))
            return NULL;
    }
    PyObject *args = PyTuple_New(n);
    if (args == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *arg = PyBytes_FromStringAndSize(starts[i], lens[i]);
        if (arg == NULL) {
            Py_DECREF(args);
            return NULL;
        }
        PyTuple_SET_ITEM(args, i, arg);
    }
    return args;
}

/* Decode the packet whose payload is at `payload` (all of it present). NULL without an
 * exception set: a flaw; the slow path judges it. */
static PyObject *
fast_packet(Core *self, Plan *plan, const char *payload, Py_ssize_t size)
{
    PyObject *args = split_payload(plan, self->number_ok, payload, size);
    if (args == NULL)
        return NULL;
    return make_packet(self, plan, args);
}

/* Give the undecoded bytes to the pure-Python decoder: _py_adopt(data, pos, base, eof). */
static int
hand_over(Core *self)
{
    PyObject *data;
    Py_ssize_t pos;
    if (self->asm_data != NULL) {
        /* The stream ended inside a packet being assembled: give back its bytes as received. */
        Py_ssize_t plen = PyBytes_GET_SIZE(self->asm_prefix);
        data = PyBytes_FromStringAndSize(NULL, plen + self->asm_filled);
        if (data == NULL)
            return -1;
        memcpy(PyBytes_AS_STRING(data), PyBytes_AS_STRING(self->asm_prefix), (size_t)plen);
        memcpy(PyBytes_AS_STRING(data) + plen, PyBytes_AS_STRING(self->asm_data), (size_t)self->asm_filled);
        self->base = self->asm_start;
        self->pos = 0;
        clear_assembly(self);
        pos = 0;
    }
    else if (self->chunk != NULL) {
        data = self->chunk;
        Py_INCREF(data);
        pos = self->pos;
    }
    else {
        data = PyBytes_FromStringAndSize(self->own + self->pos, self->own_len - self->pos);
        if (data == NULL)
            return -1;
        pos = 0;
    }
    Py_ssize_t base = self->base + (self->chunk != NULL ? 0 : self->pos);  /* (pos is 0 after assembly) */
    reset_data(self);
    self->base = 0;
    self->python_mode = 1;
    PyObject *r = PyObject_CallMethod((PyObject *)self, "_py_adopt", "NnnO", data, pos, base,
                                       self->eof ? Py_True : Py_False);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* The next event: a Packet, or the NEED_DATA / CLOSED sentinel (new references). */
static PyObject *
core_next(Core *self)
{
    if (!self->configured) {
        PyErr_SetString(PyExc_RuntimeError, "decoder not set up");
        return NULL;
    }
    if (self->ready != NULL) {
        PyObject *packet = self->ready;
        self->ready = NULL;
        return packet;
    }
    if (!self->python_mode && self->asm_data != NULL) {
        if (!self->eof) {
            Py_INCREF(self->need_data);
            return self->need_data;
        }
    }
    else if (!self->python_mode) {
        Py_ssize_t len;
        const char *d = data_ptr(self, &len);
        Py_ssize_t avail = len - self->pos;
        if (avail >= HEADER_SIZE) {
            const char *h = d + self->pos;
            int m = -1;
            if (memcmp(h, MAGIC_REQ, 4) == 0)
                m = 0;
            else if (memcmp(h, MAGIC_RES, 4) == 0)
                m = 1;
            uint32_t code = be32(h + 4), size = be32(h + 8);
            Plan *plan = (m >= 0 && code < MAX_CODE) ? self->plans[m][code] : NULL;
            if (plan != NULL && (Py_ssize_t)size <= self->limit) {
                if (avail >= HEADER_SIZE + (Py_ssize_t)size) {
                    PyObject *packet = fast_packet(self, plan, h + HEADER_SIZE, (Py_ssize_t)size);
                    if (packet != NULL) {
                        self->pos += HEADER_SIZE + (Py_ssize_t)size;
                        return packet;
                    }
                    if (PyErr_Occurred())
                        return NULL;
                }
                else if (!self->eof) {
                    if (plan->has_data && (Py_ssize_t)size >= self->large
                        && start_assembly(self, plan, h, avail, (Py_ssize_t)size) < 0)
                        return NULL;
                    Py_INCREF(self->need_data);
                    return self->need_data;
                }
            }
        }
        else if (!self->eof) {
            if (avail == 0) {
                Py_INCREF(self->need_data);
                return self->need_data;
            }
            /* Part of a header: wait while it can still begin a packet this side accepts. */
            Py_ssize_t k = avail < 4 ? avail : 4;
            const char *h = d + self->pos;
            if ((self->accepts[0] && memcmp(h, MAGIC_REQ, (size_t)k) == 0)
                || (self->accepts[1] && memcmp(h, MAGIC_RES, (size_t)k) == 0)) {
                Py_INCREF(self->need_data);
                return self->need_data;
            }
        }
    }
    if (!self->python_mode && hand_over(self) < 0)
        return NULL;
    return PyObject_CallMethodNoArgs((PyObject *)self, self->slow_name);
}

static PyObject *
Core_next_event(Core *self, PyObject *Py_UNUSED(ignored))
{
    return core_next(self);
}

static PyObject *
Core_iternext(Core *self)
{
    PyObject *event = core_next(self);
    if (event == self->need_data || event == self->closed) {
        Py_DECREF(event);
        return NULL;  /* StopIteration: more bytes are needed, or the stream ended */
    }
    return event;
}

static PyObject *
Core_iter(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

/* _core_adopt(data, pos, base): take the undecoded bytes data[pos:] back from Python. */
static PyObject *
Core_adopt(Core *self, PyObject *args)
{
    PyObject *data;
    Py_ssize_t pos, base;
    if (!PyArg_ParseTuple(args, "O!nn:_core_adopt", &PyBytes_Type, &data, &pos, &base))
        return NULL;
    if (pos < 0 || pos > PyBytes_GET_SIZE(data)) {
        PyErr_SetString(PyExc_ValueError, "position out of range");
        return NULL;
    }
    reset_data(self);
    clear_assembly(self);
    Py_CLEAR(self->ready);
    Py_INCREF(data);
    self->chunk = data;
    self->pos = pos;
    self->base = base;
    self->python_mode = 0;
    Py_RETURN_NONE;
}

static PyObject *
Core_get_offset(Core *self, void *Py_UNUSED(closure))
{
    if (self->ready != NULL)
        return PyLong_FromSsize_t(self->ready_start);
    if (self->asm_data != NULL)
        return PyLong_FromSsize_t(self->asm_start);
    return PyLong_FromSsize_t(self->base + self->pos);
}

static PyObject *
Core_get_buffered(Core *self, void *Py_UNUSED(closure))
{
    Py_ssize_t len;
    data_ptr(self, &len);
    len -= self->pos;
    if (self->ready != NULL)
        len += self->ready_len;
    if (self->asm_data != NULL)
        len += PyBytes_GET_SIZE(self->asm_prefix) + self->asm_filled;
    return PyLong_FromSsize_t(len);
}

static PyObject *
Core_get_python_mode(Core *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->python_mode);
}

static PyMethodDef Core_methods[] = {
    {"receive_data", (PyCFunction)Core_receive_data, METH_O,
     "Feed bytes as they arrive; b\"\" marks the end of the stream."},
    {"next_event", (PyCFunction)Core_next_event, METH_NOARGS,
     "The next packet or admin line, NEED_DATA, or CLOSED after a clean end of stream."},
    {"_core_setup", (PyCFunction)Core_setup, METH_VARARGS, NULL},
    {"_core_adopt", (PyCFunction)Core_adopt, METH_VARARGS, NULL},
    {"_core_set_limit", (PyCFunction)Core_set_limit, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"_core_offset", (getter)Core_get_offset, NULL, NULL, NULL},
    {"_core_buffered", (getter)Core_get_buffered, NULL, NULL, NULL},
    {"_core_python_mode", (getter)Core_get_python_mode, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Core_slots[] = {
    {Py_tp_doc, "The decoder's hot path; subclassed by gearspec.codec.Decoder."},
    {Py_tp_dealloc, Core_dealloc},
    {Py_tp_traverse, Core_traverse},
    {Py_tp_clear, Core_clear},
    {Py_tp_iter, Core_iter},
    {Py_tp_iternext, Core_iternext},
    {Py_tp_methods, Core_methods},
    {Py_tp_getset, Core_getset},
    {0, NULL},
};

static PyType_Spec Core_spec = {
    .name = "gearspec._speedups.DecoderCore",
    .basicsize = sizeof(Core),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Core_slots,
};

static int
speedups_exec(PyObject *module)
{
    PyObject *type = PyType_FromModuleAndSpec(module, &Core_spec, NULL);
    if (type == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(module, "DecoderCore", type);
    Py_DECREF(type);
    return rc;
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gearspec._speedups",
    .m_doc = "Optional C accelerator for gearspec.codec.Decoder (same events, same errors).",
    .m_size = 0,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
