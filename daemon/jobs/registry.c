/*
 * registry.c — the job types this build knows, by name.
 */
#include <stddef.h>
#include <string.h>

#include "job_type.h"

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
