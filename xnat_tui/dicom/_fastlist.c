/*
 * xnat_tui.dicom._fastlist: list one folder and stat its files without the GIL.
 *
 * Why C: on a rescan of an unchanged tree the walk is the dominant cost, and in
 * Python each file costs a DirEntry, a stat_result and a tuple (~3.5 us). Here
 * readdir and fstatat run with the GIL released into a plain C buffer, and the
 * Python objects are built afterwards in one tight loop.
 *
 * list_dir(path) -> (files, others)
 *   files:  [(name, st_size, st_mtime_ns)] for the regular files with one link,
 *           in readdir order (the order os.scandir gives);
 *   others: [name] for every other entry, in readdir order: folders, symlinks,
 *           hard-linked files, FIFOs and the like, and entries whose lstat
 *           failed (a vanished file included). The caller settles those with its
 *           general code, so this module holds no policy of its own.
 *
 * Errors opening or reading the folder raise OSError (the errno's subclass)
 * with the path as filename, as os.scandir does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

#ifdef __APPLE__
#define MTIM st_mtimespec
#else
#define MTIM st_mtim
#endif

/* One entry read under the released GIL; its name lives in the names arena. */
typedef struct {
    size_t name_off;
    size_t name_len;
    long long size;
    long long mtime_ns;
    int plain; /* 1: regular file with one link (goes to files); 0: others */
} record;

typedef struct {
    record *recs;
    size_t n, cap;
    char *names;
    size_t used, names_cap;
} buffer;

static void
buffer_free(buffer *b)
{
    free(b->recs);
    free(b->names);
    b->recs = NULL;
    b->names = NULL;
}

/* Append one record and its name; returns 0, or -1 when memory ran out. */
static int
buffer_add(buffer *b, const char *name, size_t len, const record *r)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        if (cap > SIZE_MAX / sizeof(record)) {
            return -1;
        }
        record *recs = realloc(b->recs, cap * sizeof(record));
        if (recs == NULL) {
            return -1;
        }
        b->recs = recs;
        b->cap = cap;
    }
    if (len > SIZE_MAX / 2 - b->used) {
        return -1;
    }
    if (b->used + len > b->names_cap) {
        size_t cap = b->names_cap ? b->names_cap : 8192;
        while (cap < b->used + len) {
            cap *= 2;
        }
        char *names = realloc(b->names, cap);
        if (names == NULL) {
            return -1;
        }
        b->names = names;
        b->names_cap = cap;
    }
    memcpy(b->names + b->used, name, len);
    b->recs[b->n] = *r;
    b->recs[b->n].name_off = b->used;
    b->recs[b->n].name_len = len;
    b->used += len;
    b->n++;
    return 0;
}

/* Fill r from an lstat of name; r->plain stays 0 unless it is a plain file. */
static void
classify(int dfd, const char *name, record *r)
{
    struct stat st;
    int rc;
    do {
        rc = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        return; /* the caller's general code reports or skips it */
    }
    long long ns;
    /* Python's st_mtime_ns is exact at any size; past year 2262 let it decide. */
    if (__builtin_mul_overflow((long long)st.MTIM.tv_sec, 1000000000LL, &ns) ||
        __builtin_add_overflow(ns, (long long)st.MTIM.tv_nsec, &ns)) {
        return;
    }
    r->size = (long long)st.st_size;
    r->mtime_ns = ns;
    r->plain = 1;
}

/*
 * Read the whole folder into b. Runs without the GIL, so it touches no Python
 * object. Returns 0, or an errno value (ENOMEM when the buffer could not grow).
 */
static int
read_folder(const char *path, buffer *b)
{
    int fd;
    do {
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return errno;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int err = errno;
        close(fd);
        return err;
    }
    int err = 0;
    for (;;) {
        errno = 0;
        struct dirent *ent = readdir(dir);
        if (ent == NULL) {
            err = errno; /* 0 at the end of the folder */
            break;
        }
        const char *name = ent->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        record r = {0, 0, 0, 0, 0};
#ifdef _DIRENT_HAVE_D_TYPE
        if (ent->d_type == DT_REG || ent->d_type == DT_UNKNOWN) {
            classify(fd, name, &r);
        }
#else
        classify(fd, name, &r);
#endif
        if (buffer_add(b, name, strlen(name), &r) != 0) {
            err = ENOMEM;
            break;
        }
    }
    closedir(dir); /* closes fd too */
    return err;
}

static PyObject *
list_dir(PyObject *module, PyObject *arg)
{
    (void)module;
    PyObject *encoded = NULL; /* bytes, from str or os.PathLike */
    if (!PyUnicode_FSConverter(arg, &encoded)) {
        return NULL;
    }
    buffer b = {NULL, 0, 0, NULL, 0, 0};
    int err;
    const char *cpath = PyBytes_AS_STRING(encoded);
    Py_BEGIN_ALLOW_THREADS
    err = read_folder(cpath, &b);
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    if (err == ENOMEM) {
        buffer_free(&b);
        return PyErr_NoMemory();
    }
    if (err != 0) {
        buffer_free(&b);
        errno = err;
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
    }

    PyObject *files = PyList_New(0);
    PyObject *others = PyList_New(0);
    if (files == NULL || others == NULL) {
        goto fail;
    }
    for (size_t i = 0; i < b.n; i++) {
        const record *r = &b.recs[i];
        PyObject *name = PyUnicode_DecodeFSDefaultAndSize(b.names + r->name_off,
                                                          (Py_ssize_t)r->name_len);
        if (name == NULL) {
            goto fail;
        }
        int rc;
        if (r->plain) {
            PyObject *item = PyTuple_New(3);
            PyObject *size = PyLong_FromLongLong(r->size);
            PyObject *mtime = PyLong_FromLongLong(r->mtime_ns);
            if (item == NULL || size == NULL || mtime == NULL) {
                Py_XDECREF(item);
                Py_XDECREF(size);
                Py_XDECREF(mtime);
                Py_DECREF(name);
                goto fail;
            }
            PyTuple_SET_ITEM(item, 0, name); /* steals the references */
            PyTuple_SET_ITEM(item, 1, size);
            PyTuple_SET_ITEM(item, 2, mtime);
            rc = PyList_Append(files, item);
            Py_DECREF(item);
        }
        else {
            rc = PyList_Append(others, name);
            Py_DECREF(name);
        }
        if (rc != 0) {
            goto fail;
        }
    }
    buffer_free(&b);
    PyObject *result = PyTuple_Pack(2, files, others);
    Py_DECREF(files);
    Py_DECREF(others);
    return result;

fail:
    buffer_free(&b);
    Py_XDECREF(files);
    Py_XDECREF(others);
    return NULL;
}

static PyMethodDef methods[] = {
    {"list_dir", list_dir, METH_O,
     "list_dir(path) -> (files, others)\n\n"
     "files: [(name, size, mtime_ns)] of the regular files with one link;\n"
     "others: names of every other entry. Both in readdir order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_fastlist",
    .m_doc = "List one folder and lstat its files with the GIL released.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fastlist(void)
{
    return PyModuleDef_Init(&module);
}
