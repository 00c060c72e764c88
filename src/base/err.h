/* err.h - the one error-code table every module returns from.
 *
 * Functions return 0 on success or a negative PF_E* code; values come back
 * through out-parameters. err_str() never returns NULL and the string is
 * static (nothing to free). The table below generates both the enum and the
 * messages, so they cannot drift apart (the libuv uv/errno.h pattern). */
#ifndef PF_ERR_H
#define PF_ERR_H

#define PF_ERRNO_MAP(X)                                                                            \
    X(INVAL, -1, "invalid argument")                                                               \
    X(NOMEM, -2, "out of memory")                                                                  \
    X(IO, -3, "input/output error")                                                                \
    X(NOTFOUND, -4, "not found")                                                                   \
    X(EXISTS, -5, "already exists")                                                                \
    X(DB, -6, "database error")                                                                    \
    X(TOOBIG, -7, "too large")                                                                     \
    X(FORMAT, -8, "unsupported or damaged format")                                                 \
    X(RANGE, -9, "unsatisfiable range")                                                            \
    X(CONFLICT, -10, "conflicts with existing data")                                               \
    X(IMAGE, -11, "image processing failed")                                                       \
    X(UNAVAIL, -12, "temporarily unavailable")

enum pf_err {
#define PF_ERR_ENUM(name, code, msg) PF_E##name = (code),
    PF_ERRNO_MAP(PF_ERR_ENUM)
#undef PF_ERR_ENUM
};

/* Message for a PF_E* code (or "success" for 0). Static string. */
const char *err_str(int err);

#endif
