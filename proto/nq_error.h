/*
 * nq_error.h — the one table of error codes. Codes are stable: they cross
 * the wire (reply field "code"), are the CLI's "error" names and the Python
 * client's exception mapping (tests check the three agree).
 *
 * Families (for clients): 1..19 request errors (the caller sent something
 * wrong), 20..39 job errors (the job or its state), 40..59 resource and device
 * errors, 60..79 daemon/internal errors.
 */
#ifndef NQ_ERROR_H
#define NQ_ERROR_H

#define NQ_ERRNO_MAP(X)                                         \
	X(OK, 0, "success")                                     \
	X(EPROTO, 1, "malformed message")                       \
	X(ETOOBIG, 2, "message too large")                      \
	X(EVERSION, 3, "unsupported protocol version")          \
	X(EBADOP, 4, "unknown request")                         \
	X(EBADTYPE, 5, "unknown job type")                      \
	X(EBADPARAM, 6, "invalid parameter")                    \
	X(EBADARRAY, 7, "invalid array")                        \
	X(EBADDATA, 8, "invalid data values")                   \
	X(EBADDEVICE, 9, "invalid device name")                 \
	X(ENOJOB, 20, "no such job")                            \
	X(EPERM, 21, "permission denied")                       \
	X(ESTATE, 22, "job is not in a state that allows this") \
	X(ECANCELED, 23, "job was canceled")                    \
	X(EFAILED, 24, "job failed")                            \
	X(ENOMEM, 40, "out of memory")                          \
	X(ENODEV, 41, "no such device on this server")          \
	X(EDEVICE, 42, "device error")                          \
	X(ETOOLARGE, 43, "job does not fit on any device")      \
	X(EIO, 44, "I/O error")                                 \
	X(ENOTSUP, 45, "not supported by this build")           \
	X(EQUOTA, 46, "user quota exceeded")                    \
	X(ENOSPACE, 47, "not enough free disk space")           \
	X(EBUSY, 48, "daemon is busy, retry later")             \
	X(EINTERNAL, 60, "internal error")                      \
	X(ESHUTDOWN, 61, "daemon is shutting down")             \
	X(ETIMEDOUT, 62, "timed out")

enum nq_err {
#define NQ_ERR_ENUM(name, code, text) NQ_##name = (code),
	NQ_ERRNO_MAP(NQ_ERR_ENUM)
#undef NQ_ERR_ENUM
};

/* "EBADPARAM" for NQ_EBADPARAM; "EUNKNOWN" for a code not in the table. */
const char *nq_errname(int code);
/* Human text of the table ("invalid parameter"). */
const char *nq_strerror(int code);
/* Code for a name ("EBADPARAM"), or -1. */
int nq_errcode(const char *name);

#endif
