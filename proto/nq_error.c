/* nq_error.c — names and texts of the error table in nq_error.h. */
#include "nq_error.h"

#include <stddef.h>
#include <string.h>

struct nq_errent {
	int code;
	const char *name;
	const char *text;
};

static const struct nq_errent nq_errtab[] = {
#define NQ_ERR_ENT(name, code, text) {code, #name, text},
        NQ_ERRNO_MAP(NQ_ERR_ENT)
#undef NQ_ERR_ENT
};

#define NQ_NERR (sizeof(nq_errtab) / sizeof(nq_errtab[0]))

static const struct nq_errent *
nq_errfind(int code)
{
	for (size_t i = 0; i < NQ_NERR; i++) {
		if (nq_errtab[i].code == code)
			return &nq_errtab[i];
	}
	return NULL;
}

const char *
nq_errname(int code)
{
	const struct nq_errent *e = nq_errfind(code);

	return e ? e->name : "EUNKNOWN";
}

const char *
nq_strerror(int code)
{
	const struct nq_errent *e = nq_errfind(code);

	return e ? e->text : "unknown error";
}

int
nq_errcode(const char *name)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < NQ_NERR; i++) {
		if (strcmp(nq_errtab[i].name, name) == 0)
			return nq_errtab[i].code;
	}
	return -1;
}
