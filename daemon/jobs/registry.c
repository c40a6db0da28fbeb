/*
 * registry.c — the job types this build knows, by name, and their tables.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "job_type.h"
#include "nq_error.h"
#include "params.h"

extern const struct job_type gsn_job_type;
extern const struct job_type ss_job_type;

static const struct job_type *const job_types[] = {
        &gsn_job_type,
        &ss_job_type,
        NULL,
};

const struct job_type *
job_type_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; job_types[i] != NULL; i++)
		if (strcmp(job_types[i]->name, name) == 0)
			return job_types[i];
	return NULL;
}

const struct job_type *const *
job_type_all(void)
{
	return job_types;
}

int
job_type_describe(const char *name, struct nq_value *list)
{
	size_t n = 0;
	int rc = 0;

	list->kind = NQ_NIL;
	if (name != NULL && job_type_find(name) == NULL)
		return NQ_EBADTYPE;
	while (job_types[n] != NULL)
		n++;
	list->u.list.items = calloc(n + 1, sizeof(struct nq_value));
	if (list->u.list.items == NULL)
		return NQ_ENOMEM;
	list->kind = NQ_LIST;
	list->u.list.n = 0;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (name != NULL && strcmp(name, job_types[i]->name) != 0)
			continue;
		rc = params_describe(job_types[i]->desc, job_types[i]->name,
		                     &list->u.list.items[list->u.list.n]);
		if (rc == 0)
			list->u.list.n++;
	}
	if (rc != 0)
		nq_value_free(list);
	return rc;
}
