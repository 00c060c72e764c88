/* err.c - messages for the PF_E* table in err.h. */
#include "base/err.h"

const char *err_str(int err)
{
    switch (err) {
    case 0:
        return "success";
#define PF_ERR_CASE(name, code, msg)                                                               \
    case code:                                                                                     \
        return msg;
        PF_ERRNO_MAP(PF_ERR_CASE)
#undef PF_ERR_CASE
    default:
        return "unknown error";
    }
}
